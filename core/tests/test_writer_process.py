"""The SQLite store's group commit in a process of its own (`store/writer_process.py`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sambung.errors import LeaseLost, StoreUnavailable
from sambung.store import IngestRequest, Outcome, RawEvent
from sambung.store.base import LeaseHold
from sambung.store.sqlite import SqliteStore
from sambung.testing.manual_clock import ManualClock

from .conftest import sale


def raw(key: str, clock: ManualClock) -> RawEvent:
    """A webhook's raw event with its own dedup key."""
    return RawEvent(
        outlet="kemang",
        source_system="pawoon",
        channel="webhook",
        dedup_key=key,
        body=b'{"id": "' + key.encode() + b'"}',
        received_at=clock.now(),
    )


def webhook(store: SqliteStore, external_id: str) -> IngestRequest:
    """A webhook's write: its raw event, one sale and its outbox row for `books`."""
    return IngestRequest(
        raw=raw(external_id, store.clock),  # type: ignore[arg-type]
        records=[sale(external_id)],
        routes=[("books",)],
    )


@pytest.fixture
async def store(tmp_path: Path, clock: ManualClock) -> AsyncIterator[SqliteStore]:
    """A SQLite store whose group commit runs in its writer process."""
    opened = SqliteStore(tmp_path / "sambung.db", clock=clock, writer_process=True)
    await opened.open()
    yield opened
    await opened.close()


@contextlib.contextmanager
def write_lock(path: Path) -> Iterator[None]:
    """Hold the database's write lock from another connection: the writer's BEGIN waits."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too: only its parent's wait removes it.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


async def test_groups_are_committed_by_another_process(store: SqliteStore) -> None:
    assert store.writer_pid is not None and store.writer_pid != os.getpid()
    results = await asyncio.gather(*(store.ingest(webhook(store, f"TRX-{i}")) for i in range(100)))
    assert [r.records[0].outcome for r in results] == [Outcome.INSERTED] * 100
    assert all(r.outbox_rows == 1 for r in results)
    counts = await store.counts()
    assert (counts["records"], counts["raw_events"], counts["outbox"]) == (100, 100, 100)


async def test_outcomes_are_decided_as_on_the_thread(store: SqliteStore) -> None:
    """Duplicates, changes and stale versions: the writer process plans as the thread did."""
    clock = store.clock
    newer, older = clock.now(), clock.now() - timedelta(hours=1)
    first = await store.ingest(IngestRequest(records=[sale("A", updated_at=newer)]))
    same = await store.ingest(IngestRequest(records=[sale("A", updated_at=newer)]))
    stale = await store.ingest(IngestRequest(records=[sale("A", total="1", updated_at=older)]))
    changed = await store.ingest(
        IngestRequest(records=[sale("A", total="2", updated_at=newer + timedelta(seconds=1))])
    )
    assert [r.records[0].outcome for r in (first, same, stale, changed)] == [
        Outcome.INSERTED,
        Outcome.UNCHANGED,
        Outcome.STALE,
        Outcome.UPDATED,
    ]
    again = await store.ingest(IngestRequest(raw=raw("dup", clock)))  # type: ignore[arg-type]
    repeat = await store.ingest(IngestRequest(raw=raw("dup", clock)))  # type: ignore[arg-type]
    assert (again.raw_duplicate, repeat.raw_duplicate) == (False, True)
    assert repeat.raw_event_id == again.raw_event_id


async def test_the_writer_process_stamps_with_the_daemons_clock(store: SqliteStore) -> None:
    clock = store.clock
    assert isinstance(clock, ManualClock)
    clock.advance(40 * 86400)  # after the child started: it must not use its own time
    await store.ingest(IngestRequest(records=[sale("TRX-1")]))
    record = await store.get_record("kemang", "pawoon", "transaction", "TRX-1")
    assert record is not None and record.updated_at == clock.now()


async def test_a_write_fenced_by_a_lost_lease_fails_with_lease_lost(store: SqliteStore) -> None:
    with pytest.raises(LeaseLost):
        await store.ingest(
            IngestRequest(records=[sale("TRX-1")], lease=LeaseHold("poll:x", "nobody"))
        )
    assert await store.get_record("kemang", "pawoon", "transaction", "TRX-1") is None


async def test_a_killed_writer_fails_its_pending_writes_and_the_next_one_starts_again(
    store: SqliteStore,
) -> None:
    first = store.writer_pid
    assert first is not None
    with write_lock(store.path):
        # The writer takes the group and waits in BEGIN IMMEDIATE for the lock held here.
        pending = [
            asyncio.ensure_future(store.ingest(webhook(store, f"KILLED-{i}"))) for i in range(10)
        ]
        await asyncio.sleep(0)  # the writer loop hands the group to the process
        os.kill(first, signal.SIGKILL)
        results = await asyncio.gather(*pending, return_exceptions=True)
    assert all(isinstance(r, StoreUnavailable) for r in results), results
    assert not alive(first)
    # Nothing of the killed group was committed, not even in part.
    counts = await store.counts()
    assert (counts["records"], counts["raw_events"], counts["outbox"]) == (0, 0, 0)

    # The next write starts a new writer process and is committed.
    result = await store.ingest(IngestRequest(records=[sale("AFTER")]))
    assert result.records[0].outcome is Outcome.INSERTED
    assert store.writer_pid not in (None, first)


async def test_close_commits_what_is_queued_and_ends_the_writer(
    tmp_path: Path, clock: ManualClock
) -> None:
    store = SqliteStore(tmp_path / "sambung.db", clock=clock, writer_process=True)
    await store.open()
    pid = store.writer_pid
    assert pid is not None
    pending = [
        asyncio.ensure_future(store.ingest(IngestRequest(records=[sale(f"TRX-{i}")])))
        for i in range(50)
    ]
    await asyncio.sleep(0)
    await store.close()
    assert all(f.done() and f.exception() is None for f in pending)
    assert not alive(pid)

    reopened = SqliteStore(tmp_path / "sambung.db", clock=clock)
    await reopened.open()
    try:
        assert (await reopened.counts())["records"] == 50
    finally:
        await reopened.close()


async def test_sigterm_does_not_stop_the_writer_before_the_daemon_drains(
    store: SqliteStore,
) -> None:
    """systemd signals the whole group: the writer must outlive SIGTERM until the socket closes."""
    pid = signal_writer(store, signal.SIGTERM)
    result = await store.ingest(IngestRequest(records=[sale("TRX-1")]))
    assert result.records[0].outcome is Outcome.INSERTED
    assert store.writer_pid == pid


def signal_writer(store: SqliteStore, signum: int) -> int:
    """Send `signum` to the store's writer process (and after SIGKILL wait until it is dead,
    which is not instant); its pid."""
    pid = store.writer_pid
    assert pid is not None
    os.kill(pid, signum)
    while signum == signal.SIGKILL and alive(pid):
        os.sched_yield()
    return pid


async def test_a_writer_killed_between_groups_is_replaced_before_the_next_write(
    store: SqliteStore,
) -> None:
    first = signal_writer(store, signal.SIGKILL)
    # Nothing was in its hands: the next write is not failed, it goes to a new process.
    result = await store.ingest(IngestRequest(records=[sale("TRX-1")]))
    assert result.records[0].outcome is Outcome.INSERTED
    assert store.writer_pid not in (None, first)


async def test_ping_restarts_a_dead_writer_and_fails_while_it_cannot_start(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = signal_writer(store, signal.SIGKILL)
    # A writer that cannot start (here: a Python that exits at once) makes the store unready.
    monkeypatch.setattr("sambung.store.writer_process.sys.executable", "/bin/false")
    with pytest.raises(StoreUnavailable, match="did not start"):
        await store.ping()
    with pytest.raises(StoreUnavailable):
        await store.ingest(IngestRequest(records=[sale("TRX-1")]))
    monkeypatch.undo()
    await store.ping()
    assert store.writer_pid not in (None, first)
    result = await store.ingest(IngestRequest(records=[sale("TRX-1")]))
    assert result.records[0].outcome is Outcome.INSERTED
