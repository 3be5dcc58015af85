"""Pausing a connection and its recent runs, in process: the poll loop (against the fake Qasir
API) asks nothing while paused and polls again on resume, an inbox holds its files, webhooks
are still stored, and every run or backfill slice is recorded."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from sambung.clock import SystemClock
from sambung.intake.webhooks import WebhookIngest
from sambung.store import RunOutcome, Store
from sambung.testing import make_connector, signed_request
from sambung_pawoon.connector import PawoonConnector
from sambung_qasir.fake import QasirFake

from .test_polling import START, Build, build, clock, session, vendor  # noqa: F401
from .waiting import until


async def test_a_paused_loop_asks_nothing_and_polls_again_on_resume(
    vendor: QasirFake,  # noqa: F811
    store: Store,
    build: Build,  # noqa: F811
) -> None:
    vendor.seed(10, START)
    [loop] = build(interval="1m")
    waits: list[float] = []
    held = asyncio.Event()  # never set: after a few cycles, every wait lasts until a wake

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await (held.wait() if len(waits) > 5 else asyncio.sleep(0))

    loop.sleep = sleep
    await store.set_paused("kemang", "qasir", True, actor="ayu", reason="till replaced")
    task = asyncio.create_task(loop.run_forever())
    try:
        await until(lambda: _async(len(waits) > 5))  # the start, then five paused cycles
        assert vendor.data_requests() == []
        assert await store.recent_runs("kemang", "qasir") == []

        await store.set_paused("kemang", "qasir", False, actor="ayu", reason=None)
        loop.wake()
        await until(lambda: _async(len(waits) > 6))  # one live run, then its wait
    finally:
        task.cancel()
    assert vendor.data_requests()
    [first] = await store.recent_runs("kemang", "qasir")
    assert (first.kind, first.outcome, first.records_new) == ("live", RunOutcome.OK, 10)
    assert first.cursor_before is None and first.cursor_after is not None


async def test_a_paused_connection_runs_no_backfill(
    vendor: QasirFake,  # noqa: F811
    store: Store,
    build: Build,  # noqa: F811
) -> None:
    vendor.seed(5, START)
    [loop] = build()
    await store.create_backfill(
        "kemang", "qasir", START - timedelta(days=1), START + timedelta(hours=1), "ayu"
    )
    await store.set_paused("kemang", "qasir", True, actor="ayu", reason=None)
    assert await loop.run_backfills() is False
    assert vendor.data_requests() == []


async def test_every_run_is_recorded_with_its_outcome_and_cursors(
    vendor: QasirFake,  # noqa: F811
    store: Store,
    build: Build,  # noqa: F811
) -> None:
    vendor.seed(30, START)
    [loop] = build(retries=0)
    await loop.run_once()
    vendor.faults.fail(503, times=1)
    await loop.run_once()
    await loop.run_once()
    third, second, first = await store.recent_runs("kemang", "qasir")
    assert (first.outcome, first.records_fetched, first.records_new) == (RunOutcome.OK, 30, 30)
    assert first.pages == 1 and first.started_at <= first.finished_at
    assert second.outcome is RunOutcome.FAILED and second.error and "503" in second.error
    assert second.cursor_before == second.cursor_after == first.cursor_after
    # The overlap re-read: fetched again, stored as it was.
    assert third.outcome is RunOutcome.OK and third.records_new == 0
    assert third.records_unchanged == third.records_fetched


async def test_a_backfill_slice_is_a_recorded_run(
    vendor: QasirFake,  # noqa: F811
    store: Store,
    build: Build,  # noqa: F811
) -> None:
    from sambung.intake.backfill import BackfillService

    vendor.seed(8, START)
    [loop] = build()
    loop.backfills = BackfillService(store, lambda: None, clock=loop.clock)  # type: ignore[arg-type]
    await store.create_backfill(
        "kemang", "qasir", START - timedelta(days=1), START + timedelta(hours=1), "ayu"
    )
    await loop.run_backfills()
    [slice_] = await store.recent_runs("kemang", "qasir")
    assert (slice_.kind, slice_.outcome, slice_.records_new) == ("backfill", RunOutcome.OK, 8)
    assert slice_.cursor_before is None and slice_.cursor_after is not None


async def _async(value: bool) -> bool:
    return value


async def test_a_paused_inbox_leaves_its_files_waiting_until_resumed(
    store: Store, tmp_path: Path
) -> None:
    from .csvdata import pawoon_export
    from .test_filedrop import FakeTime, watcher

    time, inbox = FakeTime(), tmp_path / "inbox"
    runner = watcher(store, inbox, time)
    runner.controls = store
    waits: list[float] = []
    resumed = asyncio.Event()

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.now += 5  # long past settle_seconds: only the pause holds the file back
        await (resumed.wait() if len(waits) == 4 else asyncio.sleep(0))

    runner._sleep = sleep
    outlet, name = runner.connector.outlet.id, runner.connector.name
    await store.set_paused(outlet, name, True, actor="ayu", reason=None)
    (inbox / "sales.csv").write_bytes(pawoon_export(5))
    task = asyncio.create_task(runner.run())
    try:
        await until(lambda: _async(len(waits) == 4))
        assert (inbox / "sales.csv").exists() and await store.list_records() == []
        await store.set_paused(outlet, name, False, actor="ayu", reason=None)
        resumed.set()
        await until(lambda: _async((inbox / "processed" / "sales.csv").exists()))
    finally:
        task.cancel()
    assert len(await store.list_records()) == 5


async def test_a_paused_connection_still_takes_and_stores_its_webhooks(store: Store) -> None:
    # Refusing one would lose it: the vendor sent it once and may never send it again.
    ingest = WebhookIngest(store, lambda outlet, kind: (), SystemClock(), lambda entry: None)
    pawoon = make_connector(PawoonConnector, {"mode": "webhook", "webhook_secret": "s3cret"})
    await store.set_paused(pawoon.outlet.id, "pawoon", True, actor="ayu", reason=None)
    body = (
        b'{"event_type": "transaction.created", "data": {"transaction_id": "TRX-9",'
        b' "total": 27800, "tax": 2750, "timestamp": "2026-11-26 20:15:00",'
        b' "payment_method": "QRIS", "items": []}}'
    )
    answer = await ingest.handle(
        pawoon, signed_request(body, secret="s3cret", header="X-Webhook-Signature"), None
    )
    assert answer.status == 200, answer.body
    assert [r.external_id for r in await store.list_records()] == ["TRX-9"]
