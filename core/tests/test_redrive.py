"""Redrive: open dead letters grouped, what a replay would do now (changing nothing), and real
replays reported per group, on both backends."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sambung.config import LoadedConfig, load_config
from sambung.connectors import WebhookRequest
from sambung.delivery.accounting import invoice_number
from sambung.delivery.dlq import DeadLetterFilter, DeadLetters, add_dead_letter_routes
from sambung.delivery.redrive import RedriveGroup
from sambung.intake.webhooks import WebhookIngest
from sambung.plugins import load_plugins
from sambung.store import DeadLetter, IngestRequest, Store
from sambung.store.base import DeadLetterQuery, DeliveryQuery, OutboxSettlement

from .conftest import sale
from .test_outbox import _context, _plugin, clock

OPEN = DeadLetterFilter()


def configure(tmp_path: Path, *, fixed: bool) -> LoadedConfig:
    """One outlet with the tally connector (its mapping broken or fixed), a Jurnal sink posting
    each transaction (its item code mapped once fixed) and an http sink."""
    books: dict[str, Any] = {
        "type": "jurnal",
        "post": "per_transaction",
        "client_id": "client-id",
        "client_secret": "client-secret-value",
        "default_customer": "Walk-in Kemang",
    }
    if fixed:
        books["default_item"] = "SALES"
    document = {
        "outlets": [
            {
                "id": "kemang",
                "name": "Kemang",
                "connectors": {"tally": {"mode": "webhook", "webhook_secret": "s3cret"}},
            }
        ],
        "sinks": {
            "books": books,
            "backend": {
                "type": "http",
                "url": "http://127.0.0.1:9/hooks",
                "secret": "whsec_" + "c2FtYnVuZy10ZXN0LXNlY3JldC0zMi1ieXRlcy1sb25n",
            },
        },
    }
    path = tmp_path / f"sambung-{fixed}.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return load_config(path, load_plugins(frozenset({"jurnal"}), extra_modules=[_plugin(fixed)]))


async def dead_letters_of_every_kind(tmp_path: Path, store: Store) -> LoadedConfig:
    """Two ingest entries (the broken mapping) and, for two sales, a delivery entry at each
    sink; returns the broken configuration."""
    broken = configure(tmp_path, fixed=False)
    ingest = WebhookIngest(store, broken.sinks_for, clock(store), lambda _entry: None)
    connector = broken.connections[0].connector(_context(broken.connections[0]))
    for n in (1, 2):
        body = f'{{"id": "T-{n}", "amount": "15000", "at": "2026-11-26T10:00:00"}}'.encode()
        request = WebhookRequest(body=body, headers={"Content-Type": "application/json"})
        assert (await ingest.handle(connector, request, "application/json")).status == 422
    records = [sale("TRX-1"), sale("TRX-2")]
    routes = [("books", "backend")] * 2
    await store.ingest(IngestRequest(records=records, routes=routes))
    for sink, error in (("books", "no item code"), ("backend", "HTTP 422: unknown outlet")):
        rows = await store.claim_outbox(sink, now=clock(store).now(), limit=10, lease_seconds=60)
        await store.settle_outbox(
            [
                OutboxSettlement(r.id, "dead", error=error, error_type="DeliveryRejected")
                for r in rows
            ],
            now=clock(store).now(),
        )
    return broken


async def snapshot(store: Store) -> tuple[Any, ...]:
    """Everything a replay could change: counts, and every row of the tables it writes."""
    return (
        await store.counts(),
        await store.list_outbox(limit=10_000),
        await store.find_dead_letters(DeadLetterQuery(status=None, limit=10_000)),
        await store.list_records(limit=10_000),
        await store.list_deliveries(DeliveryQuery(limit=10_000)),
    )


def by_key(groups: list[RedriveGroup]) -> dict[tuple[str, str, str], RedriveGroup]:
    return {group.key: group for group in groups}


async def test_a_dry_run_groups_open_entries_says_what_a_replay_would_do_and_changes_nothing(
    tmp_path: Path, store: Store
) -> None:
    broken = await dead_letters_of_every_kind(tmp_path, store)
    before = await snapshot(store)

    # With the installed (broken) plugin and the unmapped item: each group still fails.
    service = DeadLetters(store, broken, clock=clock(store))
    groups = by_key(await service.plan(await service.open_entries(OPEN)))
    assert set(groups) == {
        ("ingest", "tally", "InvalidRecord"),
        ("delivery", "books", "DeliveryRejected"),
        ("delivery", "backend", "DeliveryRejected"),
    }
    ingest = groups["ingest", "tally", "InvalidRecord"]
    assert ingest.verdicts() == {"still_failing": 2} and ingest.outlets == ("kemang",)
    assert "total" in ingest.summary()
    books = groups["delivery", "books", "DeliveryRejected"]
    assert books.verdicts() == {"still_failing": 2}
    assert "has no item code" in books.summary()
    http = groups["delivery", "backend", "DeliveryRejected"]
    assert http.summary() == "2 would be requeued (to sink backend (http))"
    assert await snapshot(store) == before

    # The fixed plugin and the item code installed: the same entries would now go through.
    fixed = configure(tmp_path, fixed=True)
    service = DeadLetters(store, fixed, clock=clock(store))
    groups = by_key(await service.plan(await service.open_entries(OPEN)))
    ingest = groups["ingest", "tally", "InvalidRecord"]
    assert ingest.verdicts() == {"would_replay": 2}
    assert ingest.summary() == "2 would map OK (2 records)"
    books = groups["delivery", "books", "DeliveryRejected"]
    numbers = [
        invoice_number("SMB-", date(2026, 11, 26), "kemang", "pawoon", "transaction", trx)
        for trx in ("TRX-1", "TRX-2")
    ]
    assert [(p.invoice, p.invoice_action) for p in books.plans] == [
        (numbers[0], "create"),
        (numbers[1], "create"),
    ]
    assert books.summary() == f"2 would post: {numbers[0]} (create), {numbers[1]} (create)"
    described = books.describe()
    assert described["count"] == 2 and described["verdicts"] == {"would_requeue": 2}
    assert await snapshot(store) == before, "a dry run writes nothing"

    # Filters narrow the groups, as for a replay.
    only = await service.open_entries(DeadLetterFilter(sink="books"))
    assert [g.key for g in await service.plan(only)] == [("delivery", "books", "DeliveryRejected")]
    typed = await service.open_entries(DeadLetterFilter(error_type="InvalidRecord"))
    assert {e.stage for e in typed} == {"ingest"}


async def test_a_sink_disabled_or_paused_in_the_running_daemon_is_named(
    tmp_path: Path, store: Store
) -> None:
    await dead_letters_of_every_kind(tmp_path, store)
    fixed = configure(tmp_path, fixed=True)
    live = {
        "backend": {"disabled": "HTTP 410 from the receiver"},
        "books": {"paused_until": clock(store).now()},
    }
    service = DeadLetters(store, fixed, clock=clock(store), live=lambda: live)
    entries = await service.open_entries(DeadLetterFilter(stage="delivery"))
    groups = by_key(await service.plan(entries))
    http = groups["delivery", "backend", "DeliveryRejected"]
    assert http.verdicts() == {"held": 2}
    assert "sink backend is disabled (HTTP 410 from the receiver)" in http.summary()
    books = groups["delivery", "books", "DeliveryRejected"]
    assert books.verdicts() == {"would_requeue": 2}
    assert all("is paused until" in (p.detail or "") for p in books.plans)


async def test_a_later_revision_would_update_its_invoice(tmp_path: Path, store: Store) -> None:
    fixed = configure(tmp_path, fixed=True)
    await store.ingest(IngestRequest(records=[sale("TRX-1")], routes=[("books",)]))
    [first] = await store.claim_outbox("books", now=clock(store).now(), limit=1, lease_seconds=60)
    await store.settle_outbox([OutboxSettlement(first.id, "delivered")], now=clock(store).now())
    await store.ingest(IngestRequest(records=[sale("TRX-1", total="30000")], routes=[("books",)]))
    [second] = await store.claim_outbox("books", now=clock(store).now(), limit=1, lease_seconds=60)
    await store.settle_outbox(
        [OutboxSettlement(second.id, "dead", error="503", error_type="RetriesExhausted")],
        now=clock(store).now(),
    )
    service = DeadLetters(store, fixed, clock=clock(store))
    [group] = await service.plan(await service.open_entries(OPEN))
    [plan] = group.plans
    assert (group.key, plan.invoice_action) == (("delivery", "books", "RetriesExhausted"), "update")


async def test_a_real_replay_reports_per_group(tmp_path: Path, store: Store) -> None:
    await dead_letters_of_every_kind(tmp_path, store)
    fixed = configure(tmp_path, fixed=True)
    service = DeadLetters(store, fixed, clock=clock(store))
    outcomes, tallies = await service.replay_grouped(await service.open_entries(OPEN))
    assert len(outcomes) == 6
    assert {(t.stage, t.target, t.error_type): dict(t.results) for t in tallies} == {
        ("ingest", "tally", "InvalidRecord"): {"replayed": 2},
        ("delivery", "books", "DeliveryRejected"): {"requeued": 2},
        ("delivery", "backend", "DeliveryRejected"): {"requeued": 2},
    }
    assert await service.open_entries(OPEN) == []
    assert len(await store.list_records()) == 4


async def test_the_api_groups_and_dry_runs_without_changing_anything(
    tmp_path: Path, store: Store
) -> None:
    await dead_letters_of_every_kind(tmp_path, store)
    fixed = configure(tmp_path, fixed=True)
    before = await snapshot(store)
    app = web.Application()
    add_dead_letter_routes(app, DeadLetters(store, fixed, clock=clock(store)))
    async with TestClient(TestServer(app)) as client:
        listed = await client.get("/api/v1/dead-letters?group=true&stage=delivery")
        assert listed.status == 200
        groups = (await listed.json())["groups"]
        assert {(g["target"], g["count"]) for g in groups} == {("books", 2), ("backend", 2)}
        plain = await (await client.get("/api/v1/dead-letters")).json()
        assert len(plain["dead_letters"]) == 6, "without group=true the answer is as before"

        dry = await client.post(
            "/api/v1/dead-letters/replay",
            json={"all": True, "dry_run": True, "filters": {"stage": "ingest"}},
        )
        assert dry.status == 200
        body = await dry.json()
        assert body["dry_run"] is True
        [group] = body["groups"]
        assert group["summary"] == "2 would map OK (2 records)"
        assert await snapshot(store) == before

        done = await client.post(
            "/api/v1/dead-letters/replay", json={"all": True, "filters": {"sink": "backend"}}
        )
        body = await done.json()
        assert [r["result"] for r in body["results"]] == ["requeued", "requeued"]
        assert body["groups"] == [
            {
                "stage": "delivery",
                "target": "backend",
                "error_type": "DeliveryRejected",
                "results": {"requeued": 2},
                "detail": None,
            }
        ]
        bad = await client.get("/api/v1/dead-letters?group=perhaps")
        assert bad.status == 400


@pytest.mark.parametrize("sambung_store_url", ["sqlite"], indirect=True)
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.binary(max_size=200))
async def test_a_dry_run_of_any_kept_body_answers_and_writes_nothing(
    tmp_path: Path, store: Store, body: bytes
) -> None:
    broken = configure(tmp_path, fixed=False)
    told: list[DeadLetter] = []
    ingest = WebhookIngest(store, broken.sinks_for, clock(store), told.append)
    connector = broken.connections[0].connector(_context(broken.connections[0]))
    request = WebhookRequest(body=body, headers={"Content-Type": "application/json"})
    await ingest.handle(connector, request, "application/json")
    before = await snapshot(store)
    fixed = configure(tmp_path, fixed=True)
    service = DeadLetters(store, fixed, clock=clock(store))
    for group in await service.plan(await service.open_entries(DeadLetterFilter(limit=1000))):
        assert group.summary()
    assert await snapshot(store) == before
