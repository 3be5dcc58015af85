"""Every operator console page over a month of one outlet's data, timed server-side.

Seeds, through the store's API only: 30 business days of 300 sales each at one outlet (every
tenth sale revised once, each revision routed to two sinks, the raw webhook body of each kept),
a delivered, retried and dead-lettered part of the outbox with the receivers' answers, ingest
dead letters, and a polled connection's month of operator cursor moves and weekly backfills.
Then signs in to the daemon's real admin app (in process, over HTTP on a local port) and
requests every page RUNS times; prints each page's median and slowest answer,
and the slowest page of all against the 200 ms target. SQLite by default; `--postgres URL` runs
it in a fresh schema of that server (dropped afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from aiohttp.test_utils import TestClient, TestServer
from sambung.config import load_config
from sambung.models import LineItem, PaymentMethod, Transaction
from sambung.plugins import load_plugins
from sambung.runtime.admin import admin_app
from sambung.runtime.daemon import Daemon
from sambung.store import DeadLetterIn, IngestRequest, RawEvent, Store
from sambung.store.base import AttemptNote, OutboxSettlement
from sambung.store.postgres import create_schema, drop_schema

TOKEN = "bench-console-admin-token-0123456789"
ZONE = ZoneInfo("Asia/Jakarta")
TARGET_MS = 200.0
METHODS = (PaymentMethod.CASH, PaymentMethod.QRIS, PaymentMethod.CARD, PaymentMethod.EWALLET)


def sale(n: int, at: datetime, total: Decimal) -> Transaction:
    item = LineItem(name="Es Kopi Susu", quantity=Decimal(1), unit_price=total, total=total)
    return Transaction(
        outlet="kemang",
        source_system="pawoon",
        external_id=f"TRX-{n:07d}",
        occurred_at=at,
        business_date=at.astimezone(ZONE).date(),
        subtotal=total,
        total=total,
        payment_method=METHODS[n % len(METHODS)],
        items=(item,),
    )


async def seed(store: Store, now: datetime, days: int, per_day: int) -> dict[str, int]:
    """A month of one outlet: sales with raw bodies and revisions, outbox, dead letters."""
    n = 0
    pending: list[asyncio.Future[Any]] = []
    for day in range(days):
        start = now - timedelta(days=day, hours=1)
        for i in range(per_day):
            n += 1
            at = start - timedelta(seconds=i * 97)
            body = f'{{"id": "TRX-{n:07d}", "total": "{25000 + i}"}}'.encode()
            raw = RawEvent("kemang", "pawoon", "webhook", f"k{n}", body, at, "sale", "json")
            request = IngestRequest(
                raw=raw, records=[sale(n, at, Decimal(25000 + i))], routes=[["backend", "erp"]]
            )
            pending.append(asyncio.ensure_future(store.ingest(request)))
            if n % 10 == 0:  # a revision: the vendor corrected the total
                again = IngestRequest(
                    records=[sale(n, at, Decimal(26000 + i))], routes=[["backend", "erp"]]
                )
                pending.append(asyncio.ensure_future(store.ingest(again)))
            if n % 100 == 0:
                letter = DeadLetterIn(
                    "ingest",
                    "kemang",
                    "pawoon",
                    "InvalidRecord",
                    f"total: not a number ({n})",
                    payload='{"total": "Rp 27.500,-"}',
                )
                pending.append(
                    asyncio.ensure_future(store.ingest(IngestRequest(dead_letter=letter)))
                )
            if len(pending) >= 500:
                await asyncio.gather(*pending)
                pending.clear()
    await asyncio.gather(*pending)
    # Deliver most of the backend's rows, retry some with the receiver's answer, kill a few.
    settled = 0
    now = store.clock.now()
    while True:
        claimed = await store.claim_outbox("backend", now=now, limit=500, lease_seconds=60)
        if not claimed:
            break
        settlements = []
        for row in claimed:
            note = AttemptNote(row.sink, row.record_id, row.revision, 1, now, latency_ms=42)
            if row.id % 50 == 0:
                answer = note._replace(http_status=422, response='{"error": "unknown sku"}')
                settlements.append(
                    OutboxSettlement(
                        row.id, "dead", "HTTP 422: unknown sku", "DeliveryRejected", None, answer
                    )
                )
            elif row.id % 20 == 0:
                busy = note._replace(http_status=503, error_type="RetriableError", response="busy")
                later = now + timedelta(days=1)
                settlements.append(
                    OutboxSettlement(row.id, "pending", "HTTP 503", "RetriableError", later, busy)
                )
            else:
                ok = note._replace(http_status=204)
                settlements.append(OutboxSettlement(row.id, "delivered", attempt=ok))
        await store.settle_outbox(settlements, now=now)
        settled += len(settlements)
    # A polled connection's month: a cursor moved by hand now and then, a backfill a week.
    for day in range(days):
        value = (now - timedelta(days=day)).isoformat()
        await store.change_cursor("kemang", "qasir", value, actor="operator:bench", reason="")
        if day % 7 == 0:
            since = now - timedelta(days=day + 1)
            await store.create_backfill("kemang", "qasir", since, since + timedelta(days=1), "b")
    return {"records": n, "settled": settled, **await store.counts()}


PAGES = (
    "/",
    "/console/connections/kemang/pawoon",
    "/console/connections/kemang/qasir",
    "/console/sinks/backend",
    "/console/sinks/erp",
    "/console/dead-letters",
    "/console/dead-letters?stage=delivery",
    "/console/dead-letters/1",
    "/console/records",
    "/console/records?outlet=kemang&kind=transaction&business_date={today}",
    "/console/records?external_id=TRX-0000500",
    "/console/records/500",
    "/console/deliveries/100",
    "/console/import",
    "/console/config",
    "/console/reconciliations",
)


async def main(days: int, per_day: int, runs: int, postgres: str | None) -> int:
    """Seed, time every page, print the table; 1 when the slowest page misses the target."""
    if postgres is None:
        return await measure("sqlite:///./sambung.db", days, per_day, runs)
    name, url = await create_schema(postgres, prefix="bench")
    try:
        return await measure(url, days, per_day, runs)
    finally:
        await drop_schema(postgres, name)


async def measure(store_url: str, days: int, per_day: int, runs: int) -> int:
    """The pages over one store (SQLite in a temporary folder, or a PostgreSQL schema)."""
    registry = load_plugins(frozenset({"pawoon", "qasir"}))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sambung.yaml"
        document = {
            "store": {"url": store_url},
            "server": {
                "public": {"host": "127.0.0.1", "port": 0},
                "admin": {"host": "127.0.0.1", "port": 0, "token": TOKEN},
            },
            "outlets": [
                {
                    "id": "kemang",
                    "name": "Kopi Senja Kemang",
                    "timezone": "Asia/Jakarta",
                    "connectors": {
                        "pawoon": {
                            "mode": ["webhook", "file-drop"],
                            "webhook_secret": "bench-console-pawoon-secret",
                        },
                        "qasir": {
                            "mode": "poll",
                            "api_key": "bench-console-qasir-key",
                            "base_url": "http://127.0.0.1:9/v1",
                        },
                    },
                }
            ],
            "sinks": {
                "backend": {
                    "type": "http",
                    "url": "http://127.0.0.1:9/x",
                    "secret": "whsec_" + "QmVuY2hDb25zb2xlU2VjcmV0MDEyMzQ1Njc4OQ==",
                },
                "erp": {"type": "jsonl", "path": "./records.jsonl"},
            },
        }
        path.write_text(yaml.safe_dump(document), encoding="utf-8")
        daemon = Daemon(load_config(path, registry, environ={}), registry)
        await daemon.store.open()
        began = time.perf_counter()
        counts = await seed(daemon.store, daemon.clock.now(), days, per_day)
        print(f"seeded in {time.perf_counter() - began:.1f}s: {counts}")
        today = daemon.clock.now().astimezone(ZONE).date().isoformat()
        async with TestClient(TestServer(admin_app(daemon, TOKEN))) as client:
            signed = await client.post("/console/signin", data={"token": TOKEN})
            assert signed.status == 200, await signed.text()
            results = []
            for page in PAGES:
                url = page.format(today=today)
                times = []
                for _ in range(runs):
                    start = time.perf_counter()
                    answer = await client.get(url)
                    text = await answer.text()
                    times.append((time.perf_counter() - start) * 1000)
                    assert answer.status == 200, (url, answer.status, text[:300])
                    assert not re.search(r"/console/signin", str(answer.url)), url
                results.append((url, statistics.median(times), max(times)))
        await daemon.store.close()
    width = max(len(url) for url, _, _ in results)
    print(f"{'PAGE'.ljust(width)}  MEDIAN ms  MAX ms")
    for url, median, most in results:
        print(f"{url.ljust(width)}  {median:9.1f}  {most:6.1f}")
    url, median, most = max(results, key=lambda r: r[1])
    verdict = "OK" if median < TARGET_MS else "OVER"
    print(
        f"slowest page: {url} median {median:.1f} ms (max {most:.1f} ms);"
        f" target {TARGET_MS:.0f} ms: {verdict}"
    )
    return 0 if median < TARGET_MS else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--per-day", type=int, default=300)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--postgres", help="time on PostgreSQL (a fresh schema of this server) instead of SQLite"
    )
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main(args.days, args.per_day, args.runs, args.postgres)))
