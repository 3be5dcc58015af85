"""`export_sqlite`: every table, every id, and the sequences moved past them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sambung.errors import ConfigError
from sambung.store import (
    AlertCondition,
    ConnectionState,
    ConnectionStatus,
    CursorUpdate,
    DeadLetterIn,
    DeadLetterQuery,
    ImportedFile,
    IngestRequest,
    RawEvent,
    Store,
)
from sambung.store.base import OutboxSettlement
from sambung.store.export import export_sqlite
from sambung.store.postgres import PostgresStore
from sambung.store.sqlite import SqliteStore
from sambung.testing.manual_clock import ManualClock

from .conftest import sale

NOW = datetime(2026, 11, 26, 13, 20, 0, 123456, tzinfo=UTC)


async def snapshot(store: Store) -> dict[str, Any]:
    """Everything the store answers about what it holds, for comparing two stores."""
    return {
        "records": await store.list_records(),
        "outbox": await store.list_outbox(),
        "dead": await store.find_dead_letters(DeadLetterQuery(status=None)),
        "states": await store.list_connection_states(),
        "activity": await store.connection_activity(),
        "raw": await store.get_raw_event(1),
        "file": await store.get_imported_file("kemang", "pawoon", "ab" * 32),
        "alerts": await store.list_alerts(),
        "gaps": await store.webhook_gaps({("kemang", "pawoon")}),
    }


async def test_export_keeps_ids_references_and_continues_the_sequences(
    tmp_path: Path, postgres_url: str
) -> None:
    source = SqliteStore(tmp_path / "s.db", clock=ManualClock(NOW))
    await source.open()
    body = RawEvent("kemang", "pawoon", "webhook", "k1", b"\x00not json\xff", NOW, "sale")
    bad = DeadLetterIn("ingest", "kemang", "pawoon", "InvalidPayload", "not JSON")
    await source.ingest(IngestRequest(raw=body, dead_letter=bad))
    await source.ingest(
        IngestRequest(
            records=[sale("TRX-1", updated_at=NOW), sale("TRX-2")],
            routes=[["books"], ["books"]],
            cursor=CursorUpdate("kemang", "qasir", "2026-11-26T13:00:00+07:00"),
        )
    )
    first, second = await source.claim_outbox(
        "books", now=NOW + timedelta(1), limit=2, lease_seconds=60
    )
    await source.settle_outbox(
        [OutboxSettlement(first.id, "delivered"), OutboxSettlement(second.id, "dead", error="410")],
        now=NOW,
    )
    await source.record_imported_file(
        ImportedFile("kemang", "pawoon", "ab" * 32, "a.csv", 10, 3, 1, "file", NOW)
    )
    await source.save_connection_state(
        ConnectionState("kemang", "qasir", "poll", ConnectionStatus.OK, NOW, NOW, records_fetched=7)
    )
    change = await source.change_cursor(
        "kemang", "moka", "2026-11-26T06:00:00+00:00", actor="operator:ayu", reason="re-read"
    )
    task = await source.create_backfill("kemang", "qasir", NOW - timedelta(1), NOW, "ayu")
    paused = AlertCondition("sink_paused", "books", "quota used up")
    await source.apply_alert_conditions(["sink_paused"], [paused], channels=["ops"], now=NOW)
    before = await snapshot(source)
    await source.close()

    copied = await export_sqlite(tmp_path / "s.db", postgres_url)
    assert copied["records"] == 2 and copied["outbox"] == 2 and copied["dead_letters"] == 2

    target = PostgresStore(postgres_url, clock=ManualClock(NOW))
    await target.open()
    try:
        after = await snapshot(target)
        assert after == before
        assert await target.get_cursor("kemang", "qasir") == "2026-11-26T13:00:00+07:00"
        # Nothing is due again, and new rows take ids after the copied ones.
        assert (
            await target.claim_outbox("books", now=NOW + timedelta(2), limit=9, lease_seconds=9)
            == []
        )
        result = await target.ingest(
            IngestRequest(
                raw=RawEvent("kemang", "pawoon", "webhook", "k2", b"{}", NOW),
                records=[sale("TRX-3")],
                routes=[["books"]],
            )
        )
        assert result.raw_event_id == 2 and result.records[0].id == 3
        assert [row.id for row in await target.list_outbox()] == [1, 2, 3]
        assert await target.cursor_changes("kemang", "moka") == [change]
        moka = await target.get_cursor_state("kemang", "moka")
        assert moka is not None and (moka.generation, moka.moved_by) == (1, "operator:ayu")
        assert await target.list_backfills() == [task]
        later = await target.create_backfill("kemang", "qasir", NOW - timedelta(1), NOW, "b")
        assert later.id == task.id + 1
        # The open alert stays open (no second "fired"), its notice still due, once.
        assert (
            await target.apply_alert_conditions(
                ["sink_paused"], [paused], channels=["ops"], now=NOW
            )
            == []
        )
        [notice] = await target.claim_alert_notices(now=NOW, limit=9, lease_seconds=9)
        assert notice.alert.subject == "books"
    finally:
        await target.close()

    with pytest.raises(ConfigError, match="already holds rows"):
        await export_sqlite(tmp_path / "s.db", postgres_url)
    again = await export_sqlite(tmp_path / "s.db", postgres_url, replace=True)
    assert again == copied
