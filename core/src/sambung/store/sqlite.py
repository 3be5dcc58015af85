"""The embedded store: one SQLite file in WAL mode, one writer thread that group-commits.

Every write request is queued; the writer takes everything waiting and commits the lot in one
transaction with a fixed number of statements (one batched statement per table), so a burst of
webhooks costs one fsync and a handful of statements instead of several each. The whole group
runs in one hop to the writer thread (the stdlib `sqlite3` driver on a dedicated thread): going
through aiosqlite would cost a thread hop per statement. Reads use aiosqlite on their own
connection; WAL lets them run beside the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
from collections.abc import Callable, Coroutine, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from sambung.clock import Clock
from sambung.errors import StoreUnavailable

from .base import ClaimedRow, DeadLetter, IngestRequest, IngestResult, LeaseHold, OutboxSettlement
from .dialect import SQLITE, from_db_time, to_db_time
from .migrations import check_known
from .migrations import sqlite_migrations as migrations
from .plan import (
    BACKFILL_PROGRESS,
    PlannedRow,
    backfill_progress,
    fence_group,
    furthest_cursors,
    leases_of,
    plan_group,
)
from .queries import (
    DEAD_LETTERS,
    DUE_OUTBOX,
    INSERT_ATTEMPT,
    INSERT_DEAD_LETTER,
    claimed_row,
    dead_letter,
    dead_letter_values,
    split_settlements,
)
from .snapshot import take_shared_lock
from .sql import Row, SqlStore, Tx
from .writer_process import WriterProcess

__all__ = ["SqliteStore", "migrations"]

# SQLite allows 32766 bound parameters per statement; stay well below it.
_MAX_PARAMETERS = 30_000
# The writer's page cache, and how many WAL pages trigger a checkpoint (see `_open_writer`).
_WRITER_CACHE_KIB = 16 * 1024
_CHECKPOINT_PAGES = 4096
_T = TypeVar("_T")
_CLAIM = (
    "SELECT o.id, o.sink, o.record_id, o.revision, o.idempotency_key, o.payload, o.attempts,"
    " o.created_at, r.outlet, r.source_system, r.kind"
    f" FROM outbox AS o JOIN records AS r ON r.id = o.record_id WHERE {DUE_OUTBOX}"
)


@lru_cache(maxsize=256)
def _rows_of_placeholders(width: int, rows: int) -> str:
    one = "(" + ", ".join("?" * width) + ")"
    return ", ".join([one] * rows)


# Rows per multi-row statement (see `_execute_rows`).
_ROWS_PER_STATEMENT = 1024


def _execute_rows(
    conn: sqlite3.Connection,
    statement: str,
    values: Sequence[Any],
    width: int,
    *,
    shared: Sequence[Any] = (),
) -> None:
    """Run an INSERT or UPDATE for rows of `width` values laid end to end in `values`, in a
    few statements: `{rows}` in `statement` stands for a multi-row VALUES list; `shared`
    values are bound once, as ?1, ?2, ... (named so in it).

    `executemany` gives up the GIL around every row's step and must win it back before the
    next: while another thread runs Python (the importer receiving its next batch, the event
    loop answering webhooks), each row waited for that thread's switch interval, and a batch
    of thousands crawled. A statement of up to `_ROWS_PER_STATEMENT` rows is bound with the GIL and
    stepped without it, as a whole. Values every row shares are bound once instead of per row
    (binding is most of the Python time of an insert). Statements come in a few fixed sizes
    (the full one, then powers of two), so the connection's statement cache keeps them all.
    """
    full = min(_ROWS_PER_STATEMENT, (_MAX_PARAMETERS - len(shared)) // width)
    for start, size in _statement_sizes(len(values) // width, full):
        bound = [*shared, *values[start * width : (start + size) * width]]
        conn.execute(statement.format(rows=_rows_of_placeholders(width, size)), bound)


def _statement_sizes(count: int, full: int) -> Iterator[tuple[int, int]]:
    """(start, size) slices covering `count` items: `full` ones, then powers of two."""
    start = 0
    while start < count:
        left = count - start
        size = full if left >= full else 1 << (left.bit_length() - 1)
        yield start, size
        start += size


def _insert_records(conn: sqlite3.Connection, rows: Sequence[PlannedRow], now: str) -> None:
    """Insert new records, one run of statements per (outlet, source, kind) they share."""
    by_prefix: dict[tuple[str, str, str], list[Any]] = {}
    for row in rows:
        outlet, source, kind, external_id = row.key
        prefix = (outlet, source, kind)
        if (values := by_prefix.get(prefix)) is None:
            values = by_prefix[prefix] = []
        values += (
            row.id,
            external_id,
            row.fingerprint,
            row.revision,
            row.version,
            row.payload,
            row.raw_event_id,
            row.business_date,
            row.webhook_at,
        )
    for (outlet, source, kind), values in by_prefix.items():
        _execute_rows(
            conn,
            "INSERT INTO records (id, outlet, source_system, kind, external_id, fingerprint,"
            " revision, source_updated_at, payload, raw_event_id, created_at, updated_at,"
            " business_date, webhook_at) SELECT column1, ?1, ?2, ?3, column2, column3, column4,"
            " column5, column6, column7, ?4, ?4, column8, column9 FROM (VALUES {rows})",
            values,
            9,
            shared=(outlet, source, kind, now),
        )


class SqliteStore(SqlStore):
    """The default store: a single SQLite file next to the daemon."""

    dialect = SQLITE
    single_process = True

    def __init__(
        self,
        path: Path,
        *,
        synchronous: str = "FULL",
        clock: Clock | None = None,
        owner: str = "local",
        writer_process: bool = False,
    ) -> None:
        super().__init__(owner=owner, clock=clock)
        self.path = path
        # FULL: a commit survives power loss, which on-premises machines do suffer; group commit
        # keeps the cost to one fsync per group.
        self._synchronous = synchronous
        self._executor: ThreadPoolExecutor | None = None
        self._writer: sqlite3.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._lock: contextlib.ExitStack | None = None
        # The group commit in a process of its own (see `writer_process`); other writes stay
        # on this process's writer connection, which WAL and busy_timeout serialise with it.
        # Where the platform lacks what it needs, the commit stays on the thread, as before.
        use_process = writer_process and WriterProcess.supported()
        self._process = WriterProcess(path, synchronous) if use_process else None

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """Create the file if needed, migrate, and start the writer."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Shared with every other user of the file; `sambung restore` needs it exclusively.
        self._lock = take_shared_lock(self.path)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sambung-sqlite-writer")
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._open_writer)
        self._reader = await aiosqlite.connect(self.path)
        await self._reader.execute("PRAGMA busy_timeout = 10000")
        await self._reader.execute("PRAGMA query_only = ON")
        if self._process is not None:
            await self._process.start()
        self._start_writers()

    def _open_writer(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 10000")
        # Bulk writes (a CSV import inserts thousands of rows a group) touch every index on
        # `records`: with SQLite's default 2 MiB cache their pages were read back again and
        # again. A 16 MiB cache and fewer, larger checkpoints (each index page written back
        # once per 16 MiB of WAL, not once per 4 MiB) cut insert plus commit time by a fifth;
        # 32 MiB measured no faster and cost its size in resident memory.
        conn.execute(f"PRAGMA cache_size = -{_WRITER_CACHE_KIB}")
        conn.execute(f"PRAGMA wal_autocheckpoint = {_CHECKPOINT_PAGES}")
        self._migrate(conn)
        self._writer = conn

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    @property
    def writer_pid(self) -> int | None:
        """The pid of the writer process, when the group commit runs in one."""
        return self._process.pid if self._process is not None else None

    async def migrate(self) -> list[str]:
        """Apply pending migrations on a connection of its own; the names applied."""
        self.path.parent.mkdir(parents=True, exist_ok=True)

        def apply() -> list[str]:
            with take_shared_lock(self.path):
                return migrate_file()

        def migrate_file() -> list[str]:
            conn = sqlite3.connect(self.path, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA busy_timeout = 10000")
                return self._migrate(conn)
            finally:
                conn.close()

        return await asyncio.to_thread(apply)

    def _migrate(self, conn: sqlite3.Connection) -> list[str]:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        known = migrations()
        check_known(applied, known)
        done = []
        for version, name, sql in known:
            if version in applied:
                continue
            # executescript commits on its own, so the migration and its bookkeeping row go in
            # one explicit transaction inside the script.
            stamp = to_db_time(self.clock.now())
            conn.executescript(
                f"BEGIN IMMEDIATE;\n{sql}\n"
                f"INSERT INTO schema_migrations VALUES ({version}, '{name}', '{stamp}');\nCOMMIT;"
            )
            done.append(name)
        return done

    async def close(self) -> None:
        """Drain queued writes, stop the writer and close both connections."""
        await self._stop_writers()
        if self._process is not None:
            await self._process.stop()
        if self._reader is not None:
            await self._reader.close()
            self._reader = None
        if self._executor is not None:
            writer = self._writer
            if writer is not None:
                await asyncio.get_running_loop().run_in_executor(self._executor, writer.close)
            self._writer = None
            self._executor.shutdown(wait=True)
            self._executor = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    # -- writes ----------------------------------------------------------------------------

    async def _commit(self, requests: Sequence[IngestRequest]) -> list[IngestResult | Exception]:
        """Commit a group on the writer thread, or in the writer process (`_commit_group`)."""
        if self._process is not None:
            return await self._process.commit(requests, self.clock.now())
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self._commit_group, requests)
        except Exception as err:  # the commit itself failed: nothing in the group is durable
            failure = StoreUnavailable(f"commit failed: {err}")
            failure.__cause__ = err
            return [failure] * len(requests)

    def _commit_group(
        self, requests: Sequence[IngestRequest], now: datetime | None = None
    ) -> list[IngestResult | Exception]:
        """Commit a group in one transaction; if it fails, commit each request on its own.

        The fallback keeps one bad request (a bug, a constraint we did not foresee) from failing
        the others that happened to share its group. `now` stamps the group (the store's clock
        unless given: the writer process gets the daemon's).
        """
        conn = self._writer
        assert conn is not None
        now = now or self.clock.now()
        try:
            conn.execute("BEGIN IMMEDIATE")
            # Fenced writes check their lease in this transaction (the write lock is held).
            kept, merge = fence_group(requests, self._held_leases(conn, requests, now))
            results = merge(self._apply_group(conn, kept, now) if kept else [])
            conn.execute("COMMIT")
            return results
        except Exception as err:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if len(requests) == 1:
                failure = StoreUnavailable(f"write failed: {err}")
                failure.__cause__ = err
                return [failure]
        return [self._commit_group([request], now)[0] for request in requests]

    @staticmethod
    def _held_leases(
        conn: sqlite3.Connection, requests: Sequence[IngestRequest], at: datetime
    ) -> set[LeaseHold]:
        """Which of the leases the group is fenced by are held by their owner at `at`."""
        now = to_db_time(at)
        return {
            lease
            for lease in leases_of(requests)
            if conn.execute(
                "SELECT 1 FROM leases WHERE name = ? AND owner = ? AND expires_at > ?",
                (lease.name, lease.owner, now),
            ).fetchone()
        }

    def _apply_group(
        self, conn: sqlite3.Connection, requests: Sequence[IngestRequest], at: datetime
    ) -> list[IngestResult]:
        """Apply a group with a fixed number of statements, however many requests it holds.

        Every statement releases and retakes the GIL, and the event loop holds it most of the
        time, so statements per group (not per request) is what sets the throughput. Ids are
        allocated here: this connection holds the write lock (BEGIN IMMEDIATE) for the whole
        group, so nobody else can take one meanwhile. Requests are applied in order, so two in
        one group that touch the same record behave as if they were committed one after the
        other.
        """
        now = to_db_time(at)
        next_raw, next_record = conn.execute(
            "SELECT (SELECT COALESCE(MAX(id), 0) FROM raw_events),"
            " (SELECT COALESCE(MAX(id), 0) FROM records)"
        ).fetchone()

        raw_ids = self._existing_raw_events(conn, requests)
        stored = self._existing_records(conn, requests)
        plan = plan_group(
            requests,
            raw_ids,
            stored,
            now=now,
            stamp=to_db_time,
            new_raw_id=itertools.count(next_raw + 1).__next__,
            new_record_id=itertools.count(next_record + 1).__next__,
        )
        raw_rows, touched, outbox_rows, results = (
            plan.raw_rows,
            plan.touched,
            plan.outbox_rows,
            plan.results,
        )

        _execute_rows(
            conn,
            "INSERT INTO raw_events (id, outlet, source_system, channel, dedup_key, event_type,"
            " content_type, body, received_at) VALUES {rows}",
            list(itertools.chain.from_iterable(raw_rows)),
            9,
        )
        _insert_records(conn, [row for row in touched.values() if row.new], now)
        updates: list[Any] = []
        for row in touched.values():
            if not row.new:
                updates += (
                    row.id,
                    row.fingerprint,
                    row.revision,
                    row.version,
                    row.payload,  # None: same content, only a newer version to remember
                    row.raw_event_id,
                    row.business_date,
                    row.webhook_at,
                )
        _execute_rows(
            conn,
            "UPDATE records SET fingerprint = v.column2, revision = v.column3,"
            " source_updated_at = v.column4, payload = COALESCE(v.column5, records.payload),"
            " raw_event_id = v.column6,"
            " updated_at = CASE WHEN v.column5 IS NULL THEN records.updated_at ELSE ?1 END,"
            " business_date = CASE WHEN v.column5 IS NULL THEN records.business_date"
            " ELSE v.column7 END, webhook_at = COALESCE(records.webhook_at, v.column8)"
            " FROM (VALUES {rows}) AS v WHERE records.id = v.column1",
            updates,
            8,
            shared=(now,),
        )
        _execute_rows(
            conn,
            "INSERT INTO outbox (sink, record_id, revision, idempotency_key, payload,"
            " next_attempt_at, created_at) VALUES {rows} ON CONFLICT (idempotency_key) DO NOTHING",
            list(itertools.chain.from_iterable(outbox_rows)),
            7,
        )
        # Dead letters are rare (a failed body): one statement each, to learn each one's id.
        for index, request in enumerate(requests):
            if (dl := request.dead_letter) is not None:
                values = dead_letter_values(dl, results[index].raw_event_id, now)
                if (found := conn.execute(INSERT_DEAD_LETTER, values).fetchone()) is not None:
                    results[index] = replace(results[index], dead_letter_id=found[0])
        conn.executemany(
            "INSERT INTO cursors (outlet, connector, value, updated_at, moved_by, generation)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (outlet, connector) DO UPDATE"
            " SET value = excluded.value, updated_at = excluded.updated_at,"
            " moved_by = excluded.moved_by"
            " WHERE (cursors.value IS NULL OR excluded.value > cursors.value)"
            " AND cursors.generation = excluded.generation",
            [
                (c.outlet, c.connector, c.value, now, c.moved_by, c.generation)
                for c in furthest_cursors(requests)
            ],
        )
        conn.executemany(BACKFILL_PROGRESS, backfill_progress(requests, results, now))
        return results

    @staticmethod
    def _existing_raw_events(
        conn: sqlite3.Connection, requests: Sequence[IngestRequest]
    ) -> dict[tuple[str, str, str], int]:
        by_source: dict[tuple[str, str], set[str]] = {}
        for request in requests:
            if (raw := request.raw) is not None:
                by_source.setdefault((raw.outlet, raw.source_system), set()).add(raw.dedup_key)
        found: dict[tuple[str, str, str], int] = {}
        for (outlet, source), dedup_keys in by_source.items():
            wanted = list(dedup_keys)
            for start, size in _statement_sizes(len(wanted), _MAX_PARAMETERS - 2):
                rows = conn.execute(
                    "SELECT dedup_key, id FROM raw_events WHERE outlet = ? AND source_system = ?"
                    f" AND dedup_key IN ({_rows_of_placeholders(1, size)})",
                    [outlet, source, *wanted[start : start + size]],
                )
                found.update({(outlet, source, key): id for key, id in rows})
        return found

    @staticmethod
    def _existing_records(
        conn: sqlite3.Connection, requests: Sequence[IngestRequest]
    ) -> dict[tuple[str, str, str, str], PlannedRow]:
        by_prefix: dict[tuple[str, str, str], set[str]] = {}
        for request in requests:
            for record in request.records:
                outlet, source, kind, external_id = record.key
                by_prefix.setdefault((outlet, source, kind), set()).add(external_id)
        found: dict[tuple[str, str, str, str], PlannedRow] = {}
        for (outlet, source, kind), external_ids in by_prefix.items():
            # One bound value per key, not four: the prefix is shared (see `_execute_rows`).
            wanted = list(external_ids)
            for start, size in _statement_sizes(len(wanted), _MAX_PARAMETERS - 3):
                rows = conn.execute(
                    "SELECT external_id, id, fingerprint, revision, source_updated_at,"
                    " raw_event_id, webhook_at FROM records WHERE outlet = ? AND source_system = ?"
                    f" AND kind = ? AND external_id IN ({_rows_of_placeholders(1, size)})",
                    [outlet, source, kind, *wanted[start : start + size]],
                )
                for external_id, id, fingerprint, revision, version, raw_id, webhook_at in rows:
                    found[(outlet, source, kind, external_id)] = PlannedRow(
                        id,
                        fingerprint,
                        revision,
                        version,
                        False,
                        raw_event_id=raw_id,
                        webhook_at=webhook_at,
                    )
        return found

    async def ping(self) -> None:
        """Raise `StoreUnavailable` unless a query answers and the writer process runs (a dead
        one is started again here, so readiness tells of one only while it cannot start)."""
        await super().ping()
        if self._process is not None:
            await self._process.ensure_running()

    # -- how statements reach the database ----------------------------------------------------

    async def _fetch(self, sql: str, *args: Any) -> list[Row]:
        """Read on the reader connection, which WAL lets run beside the writer."""
        if self._reader is None:
            raise StoreUnavailable("the store is not open")
        try:
            async with self._reader.execute(sql, args) as cursor:
                return list(await cursor.fetchall())
        except sqlite3.Error as err:
            raise StoreUnavailable(f"read failed: {err}") from err

    async def _execute(self, sql: str, *args: Any) -> int:
        """Run one statement in a transaction of its own on the writer thread."""
        return await self._on_writer(lambda conn: conn.execute(sql, args).rowcount)

    async def _write(self, work: Callable[[Tx], Coroutine[Any, Any, _T]]) -> _T:
        """Run shared transaction code on the writer thread: each of its awaits is a plain
        sqlite3 call there (`_WriterTx`), so the coroutine runs to its end without suspending."""
        return await self._on_writer(lambda conn: _run_to_end(work(_WriterTx(conn))))

    async def _on_writer(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run `work` in one transaction on the writer thread, after the writes queued before."""
        self._check_open()
        # With a writer process, take turns with its groups rather than racing it for SQLite's
        # write lock: the loser of that race sleeps in the busy handler, and under a poll
        # storm lease renewals starved until their leases lapsed.
        turn = self._process.turn if self._process is not None else contextlib.nullcontext()
        try:
            async with turn:
                return await asyncio.get_running_loop().run_in_executor(
                    self._executor, self._transaction, work
                )
        except sqlite3.Error as err:
            raise StoreUnavailable(f"write failed: {err}") from err

    def _transaction(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        conn = self._writer
        assert conn is not None
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = work(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result

    # -- outbox (claimed under the write lock, one owner per file) --------------------------

    async def claim_outbox(
        self, sink: str, *, now: datetime, limit: int, lease_seconds: float
    ) -> list[ClaimedRow]:
        """Claim up to `limit` due rows of `sink`, oldest first, one revision per record."""
        stamp = to_db_time(now)
        until = to_db_time(now + timedelta(seconds=lease_seconds))

        def claim(conn: sqlite3.Connection) -> list[ClaimedRow]:
            rows = conn.execute(_CLAIM, (sink, stamp, stamp, limit)).fetchall()
            conn.executemany(
                "UPDATE outbox SET claimed_until = ?, claimed_by = ? WHERE id = ?",
                [(until, self.owner, r[0]) for r in rows],
            )
            return [claimed_row(r, from_db_time) for r in rows]

        return await self._on_writer(claim)

    async def renew_claims(
        self, ids: Sequence[int], *, now: datetime, lease_seconds: float
    ) -> set[int]:
        """Extend this owner's claims on `ids`; the ids it still holds."""
        until = to_db_time(now + timedelta(seconds=lease_seconds))

        def renew(conn: sqlite3.Connection) -> set[int]:
            held = set()
            for outbox_id in ids:
                touched = conn.execute(
                    "UPDATE outbox SET claimed_until = ? WHERE id = ? AND status = 'pending'"
                    " AND claimed_by = ?",
                    (until, outbox_id, self.owner),
                ).rowcount
                if touched:
                    held.add(outbox_id)
            return held

        return await self._on_writer(renew) if ids else set()

    async def settle_outbox(
        self, settlements: Sequence[OutboxSettlement], *, now: datetime
    ) -> list[DeadLetter]:
        """Record delivered, retry-later and dead rows in one transaction."""
        stamp = to_db_time(now)
        # One batch's attempts share few start times (a chunk's): encode each once.
        delivered, retry, dead, attempts = split_settlements(
            settlements, now, lru_cache(maxsize=256)(to_db_time)
        )
        owner = self.owner

        # Fenced as on PostgreSQL: only rows still pending and claimed by this owner.
        mine = " AND status = 'pending' AND claimed_by = ?"

        def settle(conn: sqlite3.Connection) -> list[DeadLetter]:
            # Every attempt made is kept, fenced or not: it was sent all the same.
            conn.executemany(INSERT_ATTEMPT, attempts)
            # Delivered rows all take the same values: a few `IN` statements, not one per row
            # (per-row statements were most of a drain's settle time).
            for start in range(0, len(delivered), _IDS_PER_STATEMENT):
                ids = delivered[start : start + _IDS_PER_STATEMENT]
                conn.execute(
                    "UPDATE outbox SET status = 'delivered', attempts = attempts + 1,"
                    " delivered_at = ?, last_error = NULL, claimed_until = NULL,"
                    f" claimed_by = NULL WHERE id IN ({', '.join('?' * len(ids))})" + mine,
                    (stamp, *ids, owner),
                )
            conn.executemany(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?,"
                " claimed_until = NULL, claimed_by = NULL WHERE id = ?" + mine,
                [(due, error, outbox_id, owner) for outbox_id, due, error in retry],
            )
            created: list[DeadLetter] = []
            for entry in dead:
                killed = conn.execute(
                    "UPDATE outbox SET status = 'dead', attempts = attempts + 1, last_error = ?,"
                    " claimed_until = NULL, claimed_by = NULL WHERE id = ?" + mine,
                    (entry.error, entry.id, self.owner),
                ).rowcount
                if not killed:
                    continue
                found = conn.execute(
                    "INSERT INTO dead_letters (stage, outlet, connector, error_type, error,"
                    " outbox_id, payload, attempts, created_at, updated_at)"
                    " SELECT 'delivery', r.outlet, r.source_system, ?, ?, o.id, o.payload,"
                    " o.attempts, ?, ? FROM outbox AS o JOIN records AS r ON r.id = o.record_id"
                    " WHERE o.id = ? RETURNING id",
                    (
                        entry.error_type or "DeliveryFailed",
                        entry.error or "",
                        stamp,
                        stamp,
                        entry.id,
                    ),
                ).fetchone()
                if found is not None:
                    created.extend(
                        dead_letter(row, SQLITE.read_optional_time)
                        for row in conn.execute(f"{DEAD_LETTERS} WHERE d.id = ?", (found[0],))
                    )
            return created

        return await self._on_writer(settle)


# Ids bound in one `IN (…)`: well under SQLite's oldest limit of 999 variables per statement.
_IDS_PER_STATEMENT = 500


class _WriterTx:
    """The writer connection as a `Tx`: every call runs at once, on the calling thread."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        """Every row of a query."""
        return self._conn.execute(sql, args).fetchall()

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        """The first row of a query, if any."""
        row: Row | None = self._conn.execute(sql, args).fetchone()
        return row

    async def execute(self, sql: str, *args: Any) -> int:
        """Run one statement; how many rows it touched."""
        return self._conn.execute(sql, args).rowcount


def _run_to_end(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """The result of a coroutine that never suspends (it awaits only `_WriterTx` calls)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coroutine.close()
    raise RuntimeError("a SQLite write transaction awaited something that suspends")
