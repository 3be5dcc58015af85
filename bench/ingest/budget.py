"""The CPU-µs budget of one webhook, component by component, each step timed alone.

The same signed Pawoon requests `run.py` sends go through every step of the daemon's webhook
path on their own, in this process, and each step's CPU time (`time.process_time`, so what
else the machine runs does not count) is divided by the number of requests: verify, JSON
parse, mapping (the Pawoon helpers), validation (pydantic building the records), serialisation
and fingerprint (`Record.serialized`), the store's guard (`storable`), the group's plan, SQLite
(a group of 32 applied and committed with `synchronous=FULL`, its plan subtracted), metrics,
logging (a filtered `info`, as at level warning) and the JSON answer. What aiohttp itself costs
per request is the bare server's figure in `run.py`'s table.

The steps alone add up to less than the daemon's figure in situ: that one also holds the
awaits between the steps, the writer thread's hand-offs and the outbox's delivery.

Usage: `.venv/bin/python bench/ingest/budget.py [--requests 5000]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import itertools
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from payloads import Outlet, generate
from sambung import logs, metrics
from sambung.connectors import WebhookRequest
from sambung.models import Transaction, _json_bytes
from sambung.parse import loads
from sambung.store import IngestRequest, RawEvent
from sambung.store.base import storable
from sambung.store.dialect import to_db_time
from sambung.store.plan import plan_group
from sambung.store.sqlite import SqliteStore
from sambung.testing import make_connector, outlet
from sambung_pawoon.connector import PawoonConnector
from sambung_pawoon.mapping import to_event

GROUP = 32
SECRET = "bench-secret-kemang"


def cpu_us(count: int, step: Callable[[], object]) -> float:
    """CPU microseconds per call of `step`, over `count` calls."""
    started = time.process_time()
    for _ in range(count):
        step()
    return (time.process_time() - started) * 1e6 / count


def each_us(items: Sequence[Any], step: Callable[[Any], object]) -> float:
    """CPU microseconds per item of `step(item)`."""
    started = time.process_time()
    for item in items:
        step(item)
    return (time.process_time() - started) * 1e6 / len(items)


def budget(count: int) -> dict[str, float]:
    """Each component's CPU µs per request."""
    logs.configure(level="warning", fmt="json", stream=open("/dev/null", "w"))  # noqa: SIM115
    at = outlet("kemang")
    connector = make_connector(
        PawoonConnector, {"mode": "webhook", "webhook_secret": SECRET}, at=at
    )
    header = connector.settings.signature_header
    signed = list(generate(count, [Outlet("kemang", "Kemang", SECRET)], id_prefix="BUD-"))
    requests = [
        WebhookRequest(body=s.body, headers=CIMultiDictProxy(CIMultiDict({header: s.signature})))
        for s in signed
    ]
    figures: dict[str, float] = {}
    figures["verify (HMAC)"] = each_us(requests, connector.verify)
    payloads = [loads(r.body) for r in requests]
    figures["parse (JSON, Decimal)"] = each_us(requests, lambda r: loads(r.body))
    events = [to_event(p, at) for p in payloads]
    mapped = each_us(payloads, lambda p: to_event(p, at))
    # Validation alone: the same records' fields validated again by pydantic from plain data.
    fields = [_fields(e.records[0]) for e in events]
    validation = each_us(fields, Transaction.model_validate)
    figures["mapping (helpers)"] = mapped - validation
    figures["validation (pydantic)"] = validation
    records = [e.records[0] for e in events]
    figures["serialisation (JSON)"] = each_us(records, _json_bytes)
    dumped = [_json_bytes(r) for r in records]
    figures["fingerprint (SHA-256)"] = each_us(dumped, lambda d: hashlib.sha256(d).hexdigest())
    now = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
    ingest = [
        IngestRequest(
            raw=RawEvent(
                outlet="kemang",
                source_system="pawoon",
                channel="webhook",
                dedup_key=r.body_sha256,
                body=r.body,
                received_at=now,
                content_type="application/json",
                event_type="transaction.created",
            ),
            records=e.records,
            routes=[("archive",)],
        )
        for r, e in zip(requests, events, strict=True)
    ]
    serialised = [storable(r) for r in ingest]
    figures["storable (guard + serialise, less the two above)"] = (
        each_us(ingest, storable)
        - figures["serialisation (JSON)"]
        - figures["fingerprint (SHA-256)"]
    )
    groups = [serialised[i : i + GROUP] for i in range(0, len(serialised), GROUP)]
    stamp = to_db_time(now)

    def plan(group: Sequence[IngestRequest]) -> None:
        plan_group(
            group,
            {},
            {},
            now=stamp,
            stamp=to_db_time,
            new_raw_id=itertools.count(1).__next__,
            new_record_id=itertools.count(1).__next__,
        )

    figures["plan (per request, groups of 32)"] = each_us(groups, plan) / GROUP
    figures["SQLite (apply + COMMIT, groups of 32)"] = (
        asyncio.run(_sqlite_us(groups)) - figures["plan (per request, groups of 32)"]
    )
    figures["metrics"] = cpu_us(count, _metrics)
    log = connector.log
    figures["logging (filtered info)"] = cpu_us(
        count,
        lambda: log.info("webhook.accepted", event_type="x", external_ids=["a"], outcomes=["b"]),
    )
    body = {"success": True, "internal_id": 1, "internal_ids": [1], "event_type": "x"}
    figures["response (json_response)"] = cpu_us(count, lambda: web.json_response(body))
    return figures


def _fields(record: Transaction) -> dict[str, Any]:
    data = dict(record.__dict__)
    data["items"] = [dict(item.__dict__) for item in record.items]
    return data


def _metrics() -> None:
    metrics.child(metrics.RECORDS_INGESTED, "pawoon", "webhook", "inserted").inc()
    metrics.child(metrics.WEBHOOK_SECONDS, "pawoon").observe(0.01)
    metrics.child(metrics.SYNC_SECONDS, "pawoon").observe(0.01)
    metrics.child(metrics.SYNC_TOTAL, "pawoon", "success").inc()
    metrics.child(metrics.WEBHOOK_REQUESTS, "pawoon", "accepted").inc()


async def _sqlite_us(groups: Sequence[Sequence[IngestRequest]]) -> float:
    with tempfile.TemporaryDirectory() as work:
        store = SqliteStore(Path(work) / "budget.db")
        await store.open()
        try:
            started = time.process_time()
            for group in groups:
                await store._commit(group)  # the group-commit path alone, not the queue
            # The writer thread's CPU is this process's too: process_time counts every thread.
            return (time.process_time() - started) * 1e6 / sum(len(g) for g in groups)
        finally:
            with contextlib.suppress(Exception):
                await store.close()


def print_budget(figures: dict[str, float], aiohttp_us: float | None = None) -> None:
    """The budget as a table, with its sum."""
    rows = dict(figures)
    if aiohttp_us is not None:
        rows = {"aiohttp (bare server, in situ)": aiohttp_us, **rows}
    width = max(len(name) for name in rows)
    print(f"\n{'component':<{width}}  CPU µs/request")
    print("-" * (width + 16))
    for name, value in rows.items():
        print(f"{name:<{width}}  {value:>14.1f}")
    print(f"{'sum':<{width}}  {sum(rows.values()):>14.1f}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    args = parser.parse_args(argv)
    print_budget(budget(args.requests))
    return 0


if __name__ == "__main__":
    sys.exit(main())
