"""Outbox counts and delivery lists read through indexes (0014), on both backends: same answers."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sambung.store import DeliveryQuery, IngestRequest, Store
from sambung.store.base import OutboxSettlement

from .test_outbox import clock, configure, sale


async def _outbox(tmp_path: Path, store: Store, count: int) -> list[int]:
    """`count` sales routed to the sinks `backend` and `erp`; the ids of backend's rows."""
    loaded = configure(
        tmp_path,
        {
            "backend": {"type": "jsonl", "path": str(tmp_path / "b.jsonl")},
            "erp": {"type": "jsonl", "path": str(tmp_path / "e.jsonl")},
        },
    )
    records = [sale(f"TRX-{n}") for n in range(count)]
    routes = [loaded.sinks_for(r.outlet, r.kind) for r in records]
    await store.ingest(IngestRequest(records=records, routes=routes))
    now = clock(store).now()
    rows = await store.claim_outbox("backend", now=now, limit=100, lease_seconds=60)
    return [row.id for row in rows]


async def test_outbox_stats_count_each_status_and_the_oldest_pending_row(
    tmp_path: Path, store: Store
) -> None:
    ids = await _outbox(tmp_path, store, 6)
    now = clock(store).now()
    later = now + timedelta(minutes=5)
    await store.settle_outbox(
        [OutboxSettlement(i, "delivered") for i in ids[:3]]
        + [OutboxSettlement(ids[3], "pending", error="busy", next_attempt_at=later)]
        + [OutboxSettlement(ids[4], "dead", error="gone", error_type="SinkGone")],
        now=now,
    )
    stats = await store.outbox_stats()
    assert set(stats) == {"backend", "erp"}
    backend, erp = stats["backend"], stats["erp"]
    # ids[5] was claimed and not settled: pending still, never tried.
    assert (backend.pending, backend.retrying, backend.dead, backend.delivered) == (2, 1, 1, 3)
    assert backend.oldest_pending_at == now
    assert (erp.pending, erp.retrying, erp.dead, erp.delivered) == (6, 0, 0, 0)


async def test_an_outbox_with_nothing_pending_has_no_oldest_row(
    tmp_path: Path, store: Store
) -> None:
    ids = await _outbox(tmp_path, store, 2)
    await store.settle_outbox(
        [OutboxSettlement(i, "delivered") for i in ids], now=clock(store).now()
    )
    backend = (await store.outbox_stats())["backend"]
    assert (backend.pending, backend.oldest_pending_at, backend.delivered) == (0, None, 2)


async def test_deliveries_of_every_status_filter_list_newest_first_up_to_the_limit(
    tmp_path: Path, store: Store
) -> None:
    ids = await _outbox(tmp_path, store, 8)
    now = clock(store).now()
    await store.settle_outbox(
        [OutboxSettlement(i, "delivered") for i in ids[:5]]
        + [OutboxSettlement(ids[5], "dead", error="gone", error_type="SinkGone")],
        now=now,
    )

    async def listed(query: DeliveryQuery) -> list[int]:
        return [row.id for row in await store.list_deliveries(query)]

    assert await listed(DeliveryQuery("backend", "delivered", limit=3)) == ids[4:1:-1]
    assert await listed(DeliveryQuery("backend", "dead")) == [ids[5]]
    assert await listed(DeliveryQuery("backend", "pending")) == ids[:5:-1]
    assert await listed(DeliveryQuery("backend", outlet="kemang", limit=2)) == ids[:5:-1]
    assert await listed(DeliveryQuery("backend", outlet="elsewhere")) == []
    everything = await listed(DeliveryQuery(limit=100))
    assert len(everything) == 16 and everything == sorted(everything, reverse=True)
