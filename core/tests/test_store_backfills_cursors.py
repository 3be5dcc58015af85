"""Backfill tasks and operator cursor changes in the store, on both backends: a backfill's
progress commits with its page, and an operator's set or reset fences a poll page in flight."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sambung.store import (
    BackfillProgress,
    BackfillState,
    CursorUpdate,
    IngestRequest,
    Store,
)

from .conftest import sale

SINCE = datetime(2026, 11, 20, 17, 0, tzinfo=UTC)
UNTIL = SINCE + timedelta(days=3)
T1, T2, T3 = "2026-11-27T01:00:00+00:00", "2026-11-27T02:00:00+00:00", "2026-11-27T03:00:00+00:00"


async def test_a_poll_cursor_move_says_which_run_moved_it(store: Store) -> None:
    await store.ingest(
        IngestRequest(records=[sale()], cursor=CursorUpdate("kemang", "qasir", T1, 0, "run:a1"))
    )
    state = await store.get_cursor_state("kemang", "qasir")
    assert state is not None
    assert (state.value, state.moved_by, state.generation) == (T1, "run:a1", 0)
    assert state.moved_at == store.clock.now()
    assert [c.value for c in await store.list_cursors()] == [T1]


async def test_an_operator_set_moves_back_and_is_recorded(store: Store) -> None:
    await store.ingest(IngestRequest(cursor=CursorUpdate("kemang", "qasir", T2, 0, "run:a1")))
    change = await store.change_cursor(
        "kemang", "qasir", T1, actor="operator:ayu", reason="re-read the morning"
    )
    assert (change.before, change.after, change.actor) == (T2, T1, "operator:ayu")
    state = await store.get_cursor_state("kemang", "qasir")
    assert state is not None
    assert (state.value, state.moved_by, state.generation) == (T1, "operator:ayu", 1)
    assert await store.get_cursor("kemang", "qasir") == T1
    [shown] = await store.cursor_changes("kemang", "qasir")
    assert shown == change


async def test_a_reset_forgets_the_value_and_the_next_poll_starts_afresh(store: Store) -> None:
    await store.ingest(IngestRequest(cursor=CursorUpdate("kemang", "qasir", T2)))
    await store.change_cursor("kemang", "qasir", None, actor="operator:ayu", reason=None)
    assert await store.get_cursor("kemang", "qasir") is None
    state = await store.get_cursor_state("kemang", "qasir")
    assert state is not None and state.value is None and state.generation == 1
    # A run that read the reset cursor moves it again, from nothing.
    await store.ingest(IngestRequest(cursor=CursorUpdate("kemang", "qasir", T1, 1, "run:b2")))
    assert await store.get_cursor("kemang", "qasir") == T1
    history = await store.cursor_changes("kemang", "qasir")
    assert [(c.before, c.after) for c in history] == [(T2, None)]


async def test_a_page_in_flight_during_an_operator_set_keeps_its_records_not_its_cursor(
    store: Store,
) -> None:
    await store.ingest(IngestRequest(cursor=CursorUpdate("kemang", "qasir", T1, 0, "run:a1")))
    read = await store.get_cursor_state("kemang", "qasir")
    assert read is not None
    # The operator rewinds while the run's page is on its way ...
    await store.change_cursor(
        "kemang", "qasir", "2026-11-26T00:00:00+00:00", actor="op", reason=None
    )
    # ... and the page, further on, arrives with the generation the run read.
    late = CursorUpdate("kemang", "qasir", T3, read.generation, "run:a1")
    await store.ingest(IngestRequest(records=[sale("LATE")], cursor=late))
    assert await store.get_cursor("kemang", "qasir") == "2026-11-26T00:00:00+00:00"
    assert await store.get_record(*sale("LATE").key) is not None
    # The next run reads the new generation and moves on from the operator's cursor.
    fresh = await store.get_cursor_state("kemang", "qasir")
    assert fresh is not None
    await store.ingest(IngestRequest(cursor=CursorUpdate("kemang", "qasir", T2, fresh.generation)))
    assert await store.get_cursor("kemang", "qasir") == T2


async def test_a_backfill_moves_through_its_states(store: Store) -> None:
    task = await store.create_backfill("kemang", "qasir", SINCE, UNTIL, "operator:ayu")
    assert task.state is BackfillState.QUEUED and task.active
    assert (task.since, task.until, task.pages, task.position) == (SINCE, UNTIL, 0, None)
    running = await store.set_backfill_state(task.id, BackfillState.RUNNING)
    assert running is not None and running.started_at == store.clock.now()
    done = await store.set_backfill_state(task.id, BackfillState.DONE)
    assert done is not None and done.finished_at is not None and not done.active
    # A finished task stays finished.
    again = await store.set_backfill_state(task.id, BackfillState.FAILED, error="late")
    assert again is not None and again.state is BackfillState.DONE and again.error is None
    assert await store.get_backfill(task.id + 1000) is None
    assert await store.set_backfill_state(task.id + 1000, BackfillState.DONE) is None


async def test_backfills_are_listed_newest_first_and_by_connection(store: Store) -> None:
    first = await store.create_backfill("kemang", "qasir", SINCE, UNTIL, "a")
    second = await store.create_backfill("kemang", "moka", SINCE, UNTIL, "b")
    await store.set_backfill_state(first.id, BackfillState.CANCELLED)
    assert [b.id for b in await store.list_backfills()] == [second.id, first.id]
    assert [b.id for b in await store.list_backfills(connector="qasir")] == [first.id]
    assert [b.id for b in await store.list_backfills(active=True)] == [second.id]


async def test_a_backfill_page_commits_its_progress_with_its_records(store: Store) -> None:
    task = await store.create_backfill("kemang", "pawoon", SINCE, UNTIL, "a")
    await store.ingest(IngestRequest(records=[sale("A")], routes=[["books"]]))
    first = IngestRequest(
        records=[sale("A"), sale("B")],
        routes=[["books"], ["books"]],
        backfill=BackfillProgress(task.id, T1),
    )
    second = IngestRequest(
        records=[sale("A", total="30000"), sale("C")],
        routes=[["books"], ["books"]],
        backfill=BackfillProgress(task.id, None),  # a page without a cursor keeps the position
    )
    await store.ingest(first)
    await store.ingest(second)
    shown = await store.get_backfill(task.id)
    assert shown is not None
    assert (shown.pages, shown.position) == (2, T1)
    assert (shown.records_new, shown.records_changed, shown.records_unchanged) == (2, 1, 1)
    # Only new and changed records queued anything: A, B, A changed, C (A unchanged: nothing).
    assert len(await store.list_outbox()) == 4
    # The live cursor was never part of it.
    assert await store.get_cursor("kemang", "pawoon") is None


async def test_an_operator_set_racing_a_page_always_stands(store: Store) -> None:
    # Whichever commits first, a page whose run read the cursor before the set never leaves
    # its cursor over the operator's (on PostgreSQL the two transactions truly overlap).
    for n in range(20):
        ahead = f"2026-11-27T{n:02d}:30:00+00:00"
        read = await store.get_cursor_state("kemang", "qasir")
        generation = read.generation if read is not None else 0
        rewound = f"2026-11-26T{n:02d}:00:00+00:00"
        await asyncio.gather(
            store.ingest(
                IngestRequest(
                    records=[sale(f"R{n}")],
                    cursor=CursorUpdate("kemang", "qasir", ahead, generation, "run"),
                )
            ),
            store.change_cursor("kemang", "qasir", rewound, actor="op", reason=None),
        )
        assert await store.get_cursor("kemang", "qasir") == rewound
    assert len(await store.cursor_changes("kemang", "qasir", limit=100)) == 20
