"""The console's store reads on both backends: record search, one record by id, its outbox rows
(one per revision and sink) and a sink's newest rows."""

from __future__ import annotations

from datetime import date

from sambung.store import DeadLetterIn, IngestRequest, RecordQuery, Store
from sambung.store.base import OutboxSettlement

from .conftest import sale


async def test_search_matches_every_given_field_newest_first(store: Store) -> None:
    await store.ingest(IngestRequest(records=[sale("TRX-1"), sale("TRX-2")], routes=[[], []]))
    await store.ingest(IngestRequest(records=[sale("TRX-3", outlet="senopati")], routes=[[]]))

    everything = await store.search_records(RecordQuery())
    kemang = await store.search_records(RecordQuery(outlet="kemang", kind="transaction"))
    one = await store.search_records(RecordQuery(external_id="TRX-2"))
    that_day = await store.search_records(RecordQuery(business_date=date(2026, 11, 26)))
    other_day = await store.search_records(RecordQuery(business_date=date(2026, 11, 27)))
    limited = await store.search_records(RecordQuery(limit=1))

    assert [r.external_id for r in everything] == ["TRX-3", "TRX-2", "TRX-1"]
    assert [r.external_id for r in kemang] == ["TRX-2", "TRX-1"]
    assert [r.external_id for r in one] == ["TRX-2"]
    assert len(that_day) == 3 and other_day == []
    assert [r.external_id for r in limited] == ["TRX-3"]
    assert await store.search_records(RecordQuery(kind="payment")) == []


async def test_a_record_by_id_with_its_outbox_rows_per_revision_and_sink(store: Store) -> None:
    first = await store.ingest(IngestRequest(records=[sale()], routes=[["backend", "archive"]]))
    await store.ingest(IngestRequest(records=[sale(total="30000")], routes=[["backend"]]))
    record_id = first.records[0].id

    found = await store.get_record_by_id(record_id)
    rows = await store.record_outbox(record_id)

    assert found is not None and found.revision == 2 and '"30000"' in found.payload
    assert await store.get_record_by_id(record_id + 1000) is None
    assert [(r.sink, r.revision, r.status) for r in rows] == [
        ("backend", 1, "pending"),
        ("archive", 1, "pending"),
        ("backend", 2, "pending"),
    ]
    assert rows[0].delivered_at is None and rows[0].last_error is None
    assert '"27500"' in rows[0].payload and '"30000"' in rows[2].payload


async def test_recent_outbox_of_a_sink_newest_first_by_status(store: Store) -> None:
    await store.ingest(
        IngestRequest(records=[sale("A"), sale("B")], routes=[["backend"], ["backend"]])
    )
    await store.ingest(IngestRequest(records=[sale("C")], routes=[["archive"]]))

    backend = await store.recent_outbox("backend")
    pending = await store.recent_outbox("backend", status="pending", limit=1)
    delivered = await store.recent_outbox("backend", status="delivered")

    assert [r.record_id for r in backend] == sorted((r.record_id for r in backend), reverse=True)
    assert len(backend) == 2 and len(pending) == 1 and pending[0].id == backend[0].id
    assert delivered == []


async def test_a_connections_last_error_is_its_intakes_not_a_sinks(store: Store) -> None:
    intake = DeadLetterIn("row", "kemang", "pawoon", "InvalidRecord", "row 3: bad total")
    await store.ingest(IngestRequest(dead_letter=intake))
    await store.ingest(IngestRequest(records=[sale()], routes=[["backend"]]))
    (claimed,) = await store.claim_outbox(
        "backend", now=store.clock.now(), limit=1, lease_seconds=60
    )
    await store.settle_outbox(
        [OutboxSettlement(claimed.id, "dead", "HTTP 400: closed", "DeliveryRejected")],
        now=store.clock.now(),
    )

    activity = (await store.connection_activity())[("kemang", "pawoon")]

    assert activity["open_dead_letters"] == 1
    assert activity["last_error"] == "row 3: bad total"
