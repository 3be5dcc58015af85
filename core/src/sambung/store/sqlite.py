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
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from sambung.clock import Clock, SystemClock
from sambung.errors import ConfigError, StoreUnavailable

from .base import (
    ClaimedRow,
    ConnectionState,
    CredentialInfo,
    DeadLetter,
    DeadLetterQuery,
    ImportedFile,
    IngestRequest,
    IngestResult,
    Lease,
    LeaseHold,
    OAuthState,
    OutboxRow,
    OutboxSettlement,
    RawEvent,
    SinkStats,
    Store,
    StoredCredential,
    StoredRecord,
    storable,
)
from .plan import PlannedRow, fence_group, leases_of, load_migrations, plan_group
from .queries import (
    CONNECTION_STATES,
    COUNTS,
    DEAD_LETTER_ACTIVITY,
    DEAD_LETTERS,
    OUTBOX_STATS,
    RECORD_ACTIVITY,
    RECORD_COLUMNS,
    claimed_row,
    connection_activity,
    connection_state,
    dead_letter,
    filters,
    stored_record,
)
from .snapshot import take_shared_lock

_MAX_GROUP = 512
# SQLite allows 32766 bound parameters per statement; stay well below it.
_MAX_PARAMETERS = 30_000
# The writer's page cache, and how many WAL pages trigger a checkpoint (see `_open_writer`).
_WRITER_CACHE_KIB = 16 * 1024
_CHECKPOINT_PAGES = 4096
_Pending = tuple[IngestRequest, "asyncio.Future[IngestResult]"]


def to_db_time(value: datetime) -> str:
    """An aware datetime as sortable, fixed-width UTC text (2026-11-26T22:27:32.000000Z)."""
    # isoformat is several times faster than strftime, and this runs per record.
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def from_db_time(value: str) -> datetime:
    """Sortable UTC text back to an aware datetime."""
    return datetime.fromisoformat(value)


def _optional_time(value: str | None) -> datetime | None:
    return from_db_time(value) if value is not None else None


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, SQL) of every SQLite migration shipped with this sambung, in order."""
    return load_migrations("sambung.store.migrations.sqlite")


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
        )
    for (outlet, source, kind), values in by_prefix.items():
        _execute_rows(
            conn,
            "INSERT INTO records (id, outlet, source_system, kind, external_id, fingerprint,"
            " revision, source_updated_at, payload, raw_event_id, created_at, updated_at,"
            " business_date) SELECT column1, ?1, ?2, ?3, column2, column3, column4, column5,"
            " column6, column7, ?4, ?4, column8 FROM (VALUES {rows})",
            values,
            8,
            shared=(outlet, source, kind, now),
        )


class SqliteStore(Store):
    """The default store: a single SQLite file next to the daemon."""

    single_process = True

    def __init__(
        self,
        path: Path,
        *,
        synchronous: str = "FULL",
        clock: Clock | None = None,
        owner: str = "local",
    ) -> None:
        self.path = path
        self.clock = clock or SystemClock()
        # Who claims outbox rows, as on PostgreSQL (a claim is fenced by its owner).
        self.owner = owner
        # FULL: a commit survives power loss, which on-premises machines do suffer; group commit
        # keeps the cost to one fsync per group.
        self._synchronous = synchronous
        self._executor: ThreadPoolExecutor | None = None
        self._writer: sqlite3.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._writer_task: asyncio.Task[None] | None = None
        self._lock: contextlib.ExitStack | None = None

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
        self._writer_task = asyncio.create_task(self._write_loop(), name="sqlite-writer")

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
        newest_known = known[-1][0] if known else 0
        if applied and max(applied) > newest_known:
            raise ConfigError(
                f"store.url: the database schema is at version {max(applied)}, newer than this "
                f"sambung knows ({newest_known}); upgrade sambung before running it on this store"
            )
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
        if self._writer_task is not None:
            self._queue.put_nowait(None)
            await self._writer_task
            self._writer_task = None
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

    async def ingest(self, request: IngestRequest) -> IngestResult:
        """Queue one atomic write and wait until the group holding it is committed."""
        if self._writer_task is None or self._writer_task.done():
            raise StoreUnavailable("the store is not open")
        request = storable(request)  # the sender's bad text is an InvalidRecord, raised here
        future: asyncio.Future[IngestResult] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((request, future))
        return await future

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            group = [first]
            while len(group) < _MAX_GROUP and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stopping = True
                    break
                group.append(item)
            requests = [request for request, _ in group]
            try:
                results = await loop.run_in_executor(self._executor, self._commit_group, requests)
            except Exception as err:  # the commit itself failed: nothing in the group is durable
                failure = StoreUnavailable(f"commit failed: {err}")
                failure.__cause__ = err
                results = [failure] * len(group)
            for (_, future), result in zip(group, results, strict=True):
                if future.done():  # the waiter went away; the write stands regardless
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    def _commit_group(self, requests: Sequence[IngestRequest]) -> list[IngestResult | Exception]:
        """Commit a group in one transaction; if it fails, commit each request on its own.

        The fallback keeps one bad request (a bug, a constraint we did not foresee) from failing
        the others that happened to share its group.
        """
        conn = self._writer
        assert conn is not None
        try:
            conn.execute("BEGIN IMMEDIATE")
            # Fenced writes check their lease in this transaction (the write lock is held).
            kept, merge = fence_group(requests, self._held_leases(conn, requests))
            results = merge(self._apply_group(conn, kept) if kept else [])
            conn.execute("COMMIT")
            return results
        except Exception as err:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if len(requests) == 1:
                failure = StoreUnavailable(f"write failed: {err}")
                failure.__cause__ = err
                return [failure]
        return [self._commit_group([request])[0] for request in requests]

    def _held_leases(
        self, conn: sqlite3.Connection, requests: Sequence[IngestRequest]
    ) -> set[LeaseHold]:
        """Which of the leases the group is fenced by are held by their owner right now."""
        now = to_db_time(self.clock.now())
        return {
            lease
            for lease in leases_of(requests)
            if conn.execute(
                "SELECT 1 FROM leases WHERE name = ? AND owner = ? AND expires_at > ?",
                (lease.name, lease.owner, now),
            ).fetchone()
        }

    def _apply_group(
        self, conn: sqlite3.Connection, requests: Sequence[IngestRequest]
    ) -> list[IngestResult]:
        """Apply a group with a fixed number of statements, however many requests it holds.

        Every statement releases and retakes the GIL, and the event loop holds it most of the
        time, so statements per group (not per request) is what sets the throughput. Ids are
        allocated here: this connection holds the write lock (BEGIN IMMEDIATE) for the whole
        group, so nobody else can take one meanwhile. Requests are applied in order, so two in
        one group that touch the same record behave as if they were committed one after the
        other.
        """
        now = to_db_time(self.clock.now())
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
                )
        _execute_rows(
            conn,
            "UPDATE records SET fingerprint = v.column2, revision = v.column3,"
            " source_updated_at = v.column4, payload = COALESCE(v.column5, records.payload),"
            " raw_event_id = v.column6,"
            " updated_at = CASE WHEN v.column5 IS NULL THEN records.updated_at ELSE ?1 END,"
            " business_date = CASE WHEN v.column5 IS NULL THEN records.business_date"
            " ELSE v.column7 END FROM (VALUES {rows}) AS v WHERE records.id = v.column1",
            updates,
            7,
            shared=(now,),
        )
        _execute_rows(
            conn,
            "INSERT INTO outbox (sink, record_id, revision, idempotency_key, payload,"
            " next_attempt_at, created_at) VALUES {rows} ON CONFLICT (idempotency_key) DO NOTHING",
            list(itertools.chain.from_iterable(outbox_rows)),
            7,
        )
        # Dead letters and cursors are rare (a failed body, a poll page): one statement each.
        for index, request in enumerate(requests):
            dead_letter_id = None
            if (dl := request.dead_letter) is not None:
                found = conn.execute(
                    "INSERT INTO dead_letters (stage, outlet, connector, error_type, error, field,"
                    " raw_event_id, payload, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id",
                    (
                        dl.stage,
                        dl.outlet,
                        dl.connector,
                        dl.error_type,
                        dl.error,
                        dl.field,
                        results[index].raw_event_id,
                        dl.payload,
                        now,
                        now,
                    ),
                ).fetchone()
                dead_letter_id = found[0] if found else None
            if (cursor := request.cursor) is not None:
                conn.execute(
                    "INSERT INTO cursors (outlet, connector, value, updated_at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (outlet, connector) DO UPDATE"
                    " SET value = excluded.value, updated_at = excluded.updated_at"
                    " WHERE excluded.value > cursors.value",
                    (cursor.outlet, cursor.connector, cursor.value, now),
                )
            if dead_letter_id is not None:
                results[index] = replace(results[index], dead_letter_id=dead_letter_id)
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
                    " raw_event_id FROM records WHERE outlet = ? AND source_system = ?"
                    f" AND kind = ? AND external_id IN ({_rows_of_placeholders(1, size)})",
                    [outlet, source, kind, *wanted[start : start + size]],
                )
                for external_id, id, fingerprint, revision, version, raw_event_id in rows:
                    found[(outlet, source, kind, external_id)] = PlannedRow(
                        id, fingerprint, revision, version, False, raw_event_id=raw_event_id
                    )
        return found

    # -- reads -----------------------------------------------------------------------------

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        if self._reader is None:
            raise StoreUnavailable("the store is not open")
        try:
            async with self._reader.execute(sql, params) as cursor:
                return list(await cursor.fetchall())
        except sqlite3.Error as err:
            raise StoreUnavailable(f"read failed: {err}") from err

    async def ping(self) -> None:
        """Raise `StoreUnavailable` unless a query answers."""
        await self._fetch("SELECT 1")

    async def get_record(
        self, outlet: str, source_system: str, kind: str, external_id: str
    ) -> StoredRecord | None:
        """The stored record with that identity, if any."""
        rows = await self._fetch(
            f"SELECT {RECORD_COLUMNS} FROM records"
            " WHERE outlet = ? AND source_system = ? AND kind = ? AND external_id = ?",
            (outlet, source_system, kind, external_id),
        )
        return stored_record(rows[0], _optional_time) if rows else None

    async def list_records(
        self,
        *,
        outlet: str | None = None,
        source_system: str | None = None,
        kind: str | None = None,
        limit: int = 100,
    ) -> list[StoredRecord]:
        """The most recently changed records, newest first."""
        where, params = _filters(outlet=outlet, source_system=source_system, kind=kind)
        rows = await self._fetch(
            f"SELECT {RECORD_COLUMNS} FROM records{where}"
            " ORDER BY updated_at DESC, id DESC LIMIT ?",
            (*params, limit),
        )
        return [stored_record(row, _optional_time) for row in rows]

    async def list_outbox(self, *, sink: str | None = None, limit: int = 1000) -> list[OutboxRow]:
        """Outbox rows in the order they were written."""
        where, params = _filters(sink=sink)
        rows = await self._fetch(
            "SELECT id, sink, record_id, revision, idempotency_key, payload, status, attempts,"
            f" next_attempt_at, created_at FROM outbox{where} ORDER BY id LIMIT ?",
            (*params, limit),
        )
        return [
            OutboxRow(
                id=r[0],
                sink=r[1],
                record_id=r[2],
                revision=r[3],
                idempotency_key=r[4],
                payload=r[5],
                status=r[6],
                attempts=r[7],
                next_attempt_at=from_db_time(r[8]),
                created_at=from_db_time(r[9]),
            )
            for r in rows
        ]

    async def get_raw_event(self, raw_event_id: int) -> RawEvent | None:
        """A stored raw event with its verbatim body."""
        rows = await self._fetch(
            "SELECT outlet, source_system, channel, dedup_key, body, received_at, event_type,"
            " content_type FROM raw_events WHERE id = ?",
            (raw_event_id,),
        )
        if not rows:
            return None
        r = rows[0]
        return RawEvent(
            outlet=r[0],
            source_system=r[1],
            channel=r[2],
            dedup_key=r[3],
            body=bytes(r[4]),
            received_at=from_db_time(r[5]),
            event_type=r[6],
            content_type=r[7],
        )

    async def get_cursor(self, outlet: str, connector: str) -> str | None:
        """The committed poll cursor of one connection."""
        rows = await self._fetch(
            "SELECT value FROM cursors WHERE outlet = ? AND connector = ?", (outlet, connector)
        )
        return rows[0][0] if rows else None

    async def counts(self) -> dict[str, int]:
        """Row counts per table."""
        rows = await self._fetch(COUNTS)
        return {name: count for name, count in rows}

    # -- outbox and dead letters -----------------------------------------------------------

    async def _write(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run `work` in one transaction on the writer thread, after the writes queued before."""
        if self._writer_task is None or self._writer_task.done() or self._executor is None:
            raise StoreUnavailable("the store is not open")
        try:
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

    async def claim_outbox(
        self, sink: str, *, now: datetime, limit: int, lease_seconds: float
    ) -> list[ClaimedRow]:
        """Claim up to `limit` due rows of `sink`, oldest first, one revision per record."""
        stamp = to_db_time(now)
        until = to_db_time(now + timedelta(seconds=lease_seconds))

        def claim(conn: sqlite3.Connection) -> list[ClaimedRow]:
            rows = conn.execute(
                "SELECT o.id, o.sink, o.record_id, o.revision, o.idempotency_key, o.payload,"
                " o.attempts, o.created_at, r.outlet, r.source_system, r.kind"
                " FROM outbox AS o JOIN records AS r ON r.id = o.record_id"
                " WHERE o.sink = ? AND o.status = 'pending' AND o.next_attempt_at <= ?"
                " AND (o.claimed_until IS NULL OR o.claimed_until <= ?)"
                " AND NOT EXISTS (SELECT 1 FROM outbox AS p WHERE p.sink = o.sink"
                "  AND p.record_id = o.record_id AND p.status = 'pending'"
                "  AND p.revision < o.revision)"
                " ORDER BY o.next_attempt_at, o.id LIMIT ?",
                (sink, stamp, stamp, limit),
            ).fetchall()
            conn.executemany(
                "UPDATE outbox SET claimed_until = ?, claimed_by = ? WHERE id = ?",
                [(until, self.owner, r[0]) for r in rows],
            )
            return [claimed_row(r, from_db_time) for r in rows]

        return await self._write(claim)

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

        return await self._write(renew) if ids else set()

    async def release_claims(self, sink: str | None = None) -> int:
        """Drop every claim, or those of one sink: one process uses the file, so any claim is
        this one's or was left by one that is gone."""
        where, params = _filters(sink=sink)
        clause = " AND " + where.removeprefix(" WHERE ") if where else ""
        return await self._write(
            lambda conn: conn.execute(
                "UPDATE outbox SET claimed_until = NULL, claimed_by = NULL"
                f" WHERE claimed_until IS NOT NULL{clause}",
                params,
            ).rowcount
        )

    # -- leases ----------------------------------------------------------------------------

    async def acquire_or_renew_lease(
        self, name: str, owner: str, *, ttl: float, now: datetime
    ) -> bool:
        """Take or renew a lease in one statement on the writer thread."""
        stamp, until = to_db_time(now), to_db_time(now + timedelta(seconds=ttl))
        return await self._write(
            lambda conn: conn.execute(
                "INSERT INTO leases (name, owner, expires_at, acquired_at, renewed_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE"
                " SET owner = excluded.owner, expires_at = excluded.expires_at,"
                " renewed_at = excluded.renewed_at,"
                " acquired_at = CASE WHEN leases.owner = excluded.owner"
                "  THEN leases.acquired_at ELSE excluded.acquired_at END"
                " WHERE leases.owner = excluded.owner OR leases.expires_at <= ?",
                (name, owner, until, stamp, stamp, stamp),
            ).rowcount
            == 1
        )

    async def release_lease(self, name: str, owner: str) -> bool:
        """Delete the lease if `owner` holds it."""
        return await self._write(
            lambda conn: conn.execute(
                "DELETE FROM leases WHERE name = ? AND owner = ?", (name, owner)
            ).rowcount
            == 1
        )

    async def list_leases(self, prefix: str = "") -> list[Lease]:
        """Every lease whose name starts with `prefix`, by name."""
        rows = await self._fetch(
            "SELECT name, owner, expires_at, acquired_at, renewed_at FROM leases"
            " WHERE substr(name, 1, ?) = ? ORDER BY name",
            (len(prefix), prefix),
        )
        return [Lease(r[0], r[1], *(from_db_time(t) for t in r[2:])) for r in rows]

    async def settle_outbox(
        self, settlements: Sequence[OutboxSettlement], *, now: datetime
    ) -> list[DeadLetter]:
        """Record delivered, retry-later and dead rows in one transaction."""
        stamp = to_db_time(now)
        delivered = [(stamp, s.id) for s in settlements if s.status == "delivered"]
        retry = [
            (to_db_time(s.next_attempt_at or now), s.error, s.id)
            for s in settlements
            if s.status == "pending"
        ]
        dead = [s for s in settlements if s.status == "dead"]

        # Fenced as on PostgreSQL: only rows still pending and claimed by this owner.
        mine = " AND status = 'pending' AND claimed_by = ?"

        def settle(conn: sqlite3.Connection) -> list[DeadLetter]:
            conn.executemany(
                "UPDATE outbox SET status = 'delivered', attempts = attempts + 1,"
                " delivered_at = ?, last_error = NULL, claimed_until = NULL, claimed_by = NULL"
                " WHERE id = ?" + mine,
                [(*row, self.owner) for row in delivered],
            )
            conn.executemany(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?,"
                " claimed_until = NULL, claimed_by = NULL WHERE id = ?" + mine,
                [(*row, self.owner) for row in retry],
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
                        dead_letter(row, _optional_time)
                        for row in conn.execute(f"{DEAD_LETTERS} WHERE d.id = ?", (found[0],))
                    )
            return created

        return await self._write(settle)

    async def outbox_stats(self) -> dict[str, SinkStats]:
        """Counts per sink of pending, retrying, dead and delivered rows."""
        rows = await self._fetch(OUTBOX_STATS)
        return {r[0]: SinkStats(r[0], r[1], _optional_time(r[2]), r[3], r[4], r[5]) for r in rows}

    async def prune_outbox(self, *, before: datetime, limit: int = 5000) -> int:
        """Delete up to `limit` delivered or superseded rows finished before `before`."""
        stamp = to_db_time(before)
        return await self._write(
            lambda conn: conn.execute(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox"
                " WHERE status IN ('delivered', 'superseded') AND delivered_at < ?"
                " AND NOT EXISTS (SELECT 1 FROM dead_letters AS d WHERE d.outbox_id = outbox.id)"
                " LIMIT ?)",
                (stamp, limit),
            ).rowcount
        )

    async def find_dead_letters(self, query: DeadLetterQuery) -> list[DeadLetter]:
        """Dead letters matching `query`, newest first."""
        where, params = _filters(
            **{
                "d.stage": query.stage,
                "d.outlet": query.outlet,
                "d.connector": query.connector,
                "d.status": query.status,
            }
        )
        if query.since is not None:
            where += (" AND " if where else " WHERE ") + "d.created_at >= ?"
            params.append(to_db_time(query.since))
        rows = await self._fetch(
            f"{DEAD_LETTERS}{where} ORDER BY d.id DESC LIMIT ?",
            (*params, query.limit),
        )
        return [dead_letter(row, _optional_time) for row in rows]

    async def get_dead_letter(self, dead_letter_id: int) -> DeadLetter | None:
        """One dead letter, whatever its status."""
        rows = await self._fetch(f"{DEAD_LETTERS} WHERE d.id = ?", (dead_letter_id,))
        return dead_letter(rows[0], _optional_time) if rows else None

    async def requeue_dead_letter(self, dead_letter_id: int, *, now: datetime) -> bool:
        """Put an open delivery dead letter's row back to pending (or superseded)."""
        stamp = to_db_time(now)

        def requeue(conn: sqlite3.Connection) -> bool:
            found = conn.execute(
                "SELECT outbox_id FROM dead_letters"
                " WHERE id = ? AND stage = 'delivery' AND status = 'open'"
                " AND outbox_id IS NOT NULL",
                (dead_letter_id,),
            ).fetchone()
            if found is None:
                return False
            newer = conn.execute(
                "SELECT 1 FROM outbox AS o JOIN outbox AS n ON n.sink = o.sink"
                " AND n.record_id = o.record_id AND n.revision > o.revision"
                " AND n.status IN ('pending', 'delivered') WHERE o.id = ? LIMIT 1",
                (found[0],),
            ).fetchone()
            if newer is not None:  # delivering it now would put an old version over a new one
                conn.execute(
                    "UPDATE outbox SET status = 'superseded', delivered_at = ? WHERE id = ?",
                    (stamp, found[0]),
                )
            else:
                conn.execute(
                    "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ?,"
                    " claimed_until = NULL, claimed_by = NULL, last_error = NULL WHERE id = ?",
                    (stamp, found[0]),
                )
            conn.execute(
                "UPDATE dead_letters SET status = 'replayed', attempts = attempts + 1,"
                " updated_at = ? WHERE id = ?",
                (stamp, dead_letter_id),
            )
            return True

        return await self._write(requeue)

    async def resolve_dead_letter(self, dead_letter_id: int, status: str) -> bool:
        """Move an open dead letter to `replayed` or `discarded`."""
        if status not in ("replayed", "discarded"):
            raise ValueError(f"a dead letter cannot become {status!r}")
        stamp = to_db_time(self.clock.now())
        bump = ", attempts = attempts + 1" if status == "replayed" else ""
        return await self._write(
            lambda conn: conn.execute(
                f"UPDATE dead_letters SET status = ?, updated_at = ?{bump}"
                " WHERE id = ? AND status = 'open'",
                (status, stamp, dead_letter_id),
            ).rowcount
            == 1
        )

    async def connection_activity(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Per (outlet, source_system): records, open dead letters, last success and error."""
        return connection_activity(
            await self._fetch(RECORD_ACTIVITY),
            await self._fetch(DEAD_LETTER_ACTIVITY),
            _optional_time,
        )

    # -- imported files (file-drop) --------------------------------------------------------

    async def get_imported_file(
        self, outlet: str, connector: str, sha256: str
    ) -> ImportedFile | None:
        """The import of a file with this content at this connection, if it happened."""
        rows = await self._fetch(
            "SELECT outlet, connector, sha256, name, size, rows_imported, rows_rejected,"
            " channel, imported_at FROM imported_files"
            " WHERE outlet = ? AND connector = ? AND sha256 = ?",
            (outlet, connector, sha256),
        )
        if not rows:
            return None
        o, c, sha, name, size, imported, rejected, channel, at = rows[0]
        return ImportedFile(o, c, sha, name, size, imported, rejected, channel, from_db_time(at))

    async def record_imported_file(self, entry: ImportedFile) -> None:
        """Remember a file as imported, on the writer thread; a repeat is a no-op."""
        row = (
            entry.outlet,
            entry.connector,
            entry.sha256,
            entry.name,
            entry.size,
            entry.rows_imported,
            entry.rows_rejected,
            entry.channel,
            to_db_time(entry.imported_at),
        )
        await self._write(
            lambda conn: conn.execute(
                "INSERT INTO imported_files (outlet, connector, sha256, name, size,"
                " rows_imported, rows_rejected, channel, imported_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                row,
            )
        )

    # -- connection states -----------------------------------------------------------------

    async def save_connection_state(self, state: ConnectionState) -> None:
        """Upsert one connection's state, on the writer thread between groups."""
        times = [
            to_db_time(t) if t is not None else None
            for t in (state.last_run_at, state.last_success_at, state.last_error_at)
        ]
        row = (
            state.outlet,
            state.connector,
            state.mode,
            state.state.value,
            *times[:2],
            state.last_error,
            times[2],
            state.records_fetched,
            state.refused_credentials,
            to_db_time(self.clock.now()),
        )
        await self._write(
            lambda conn: conn.execute(
                "INSERT INTO connection_states (outlet, connector, mode, state, last_run_at,"
                " last_success_at, last_error, last_error_at, records_fetched,"
                " refused_credentials, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (outlet, connector, mode) DO UPDATE SET state = excluded.state,"
                " last_run_at = COALESCE(excluded.last_run_at, last_run_at),"
                " last_success_at = COALESCE(excluded.last_success_at, last_success_at),"
                " last_error = COALESCE(excluded.last_error, last_error),"
                " last_error_at = COALESCE(excluded.last_error_at, last_error_at),"
                " records_fetched = records_fetched + excluded.records_fetched,"
                " refused_credentials = excluded.refused_credentials,"
                " updated_at = excluded.updated_at",
                row,
            )
        )

    async def list_connection_states(self) -> list[ConnectionState]:
        """Every recorded connection state with its committed cursor."""
        rows = await self._fetch(CONNECTION_STATES)
        return [connection_state(r, _optional_time) for r in rows]

    # -- daily summaries -------------------------------------------------------------------

    async def records_of_day(
        self, outlet: str, kind: str, business_date: date
    ) -> list[StoredRecord]:
        """Every record of `kind` at `outlet` on that business date, by id."""
        rows = await self._fetch(
            f"SELECT {RECORD_COLUMNS} FROM records"
            " WHERE outlet = ? AND kind = ? AND business_date = ? ORDER BY id",
            (outlet, kind, business_date.isoformat()),
        )
        return [stored_record(row, _optional_time) for row in rows]

    async def changed_business_dates(
        self, outlet: str, kind: str, *, since: datetime
    ) -> dict[date, datetime]:
        """Business dates of `kind` records at `outlet` written at or after `since`."""
        rows = await self._fetch(
            # The rows written since `since` are few; without the hint SQLite would walk
            # every record of the outlet through records_business_date instead.
            "SELECT business_date, MAX(updated_at) FROM records INDEXED BY records_updated"
            " WHERE outlet = ? AND kind = ? AND updated_at >= ? AND business_date IS NOT NULL"
            " GROUP BY business_date",
            (outlet, kind, to_db_time(since)),
        )
        return {date.fromisoformat(day): from_db_time(last) for day, last in rows}

    # -- credentials and OAuth states ------------------------------------------------------

    async def save_credential(self, credential: StoredCredential) -> None:
        """Insert or replace one connection's (already encrypted) credential."""
        row = (
            credential.outlet,
            credential.connector,
            credential.kind,
            credential.secret,
            to_db_time(credential.expires_at) if credential.expires_at else None,
            to_db_time(credential.updated_at),
        )
        await self._write(
            lambda conn: conn.execute(
                "INSERT INTO credentials (outlet, connector, kind, secret, expires_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (outlet, connector) DO UPDATE SET"
                " kind = excluded.kind, secret = excluded.secret,"
                " expires_at = excluded.expires_at, updated_at = excluded.updated_at",
                row,
            )
        )

    async def get_credential(self, outlet: str, connector: str) -> StoredCredential | None:
        """One connection's credential, still encrypted."""
        rows = await self._fetch(
            "SELECT outlet, connector, kind, secret, expires_at, updated_at FROM credentials"
            " WHERE outlet = ? AND connector = ?",
            (outlet, connector),
        )
        if not rows:
            return None
        o, c, kind, secret, expires, updated = rows[0]
        return StoredCredential(
            o, c, kind, bytes(secret), _optional_time(expires), from_db_time(updated)
        )

    async def list_credentials(self) -> list[CredentialInfo]:
        """Metadata of every stored credential; the secret column is never read."""
        rows = await self._fetch(
            "SELECT outlet, connector, kind, expires_at, updated_at FROM credentials"
            " ORDER BY outlet, connector"
        )
        return [
            CredentialInfo(r[0], r[1], r[2], _optional_time(r[3]), from_db_time(r[4])) for r in rows
        ]

    async def delete_credential(self, outlet: str, connector: str) -> bool:
        """Forget one connection's credential."""
        cursor = await self._write(
            lambda conn: conn.execute(
                "DELETE FROM credentials WHERE outlet = ? AND connector = ?", (outlet, connector)
            )
        )
        return cursor.rowcount > 0

    async def create_oauth_state(self, state: OAuthState) -> None:
        """Remember a handed-out state; states expired for a day are dropped on the way."""
        row = (
            state.state_hash,
            state.outlet,
            state.connector,
            state.redirect_uri,
            state.secret,
            to_db_time(state.created_at),
            to_db_time(state.expires_at),
        )
        # Kept a day past expiry, so a late replay is told apart from a forged state.
        stale = to_db_time(state.created_at - timedelta(days=1))

        def create(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM oauth_states WHERE expires_at < ?", (stale,))
            conn.execute(
                "INSERT INTO oauth_states (state_hash, outlet, connector, redirect_uri, secret,"
                " created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                row,
            )

        await self._write(create)

    async def consume_oauth_state(self, state_hash: str, *, now: datetime) -> OAuthState | None:
        """Mark a state used in one writer transaction; the state as it was before."""

        def consume(conn: sqlite3.Connection) -> OAuthState | None:
            found = conn.execute(
                "SELECT state_hash, outlet, connector, redirect_uri, secret, created_at,"
                " expires_at, consumed_at FROM oauth_states WHERE state_hash = ?",
                (state_hash,),
            ).fetchone()
            if found is None:
                return None
            if found[7] is None:
                conn.execute(
                    "UPDATE oauth_states SET consumed_at = ? WHERE state_hash = ?",
                    (to_db_time(now), state_hash),
                )
            return OAuthState(
                state_hash=found[0],
                outlet=found[1],
                connector=found[2],
                redirect_uri=found[3],
                secret=bytes(found[4]) if found[4] is not None else None,
                created_at=from_db_time(found[5]),
                expires_at=from_db_time(found[6]),
                consumed_at=_optional_time(found[7]),
            )

        return await self._write(consume)


_T = TypeVar("_T")


def _filters(**columns: str | None) -> tuple[str, list[Any]]:
    """A WHERE clause (or nothing) matching every given column exactly."""
    return filters(lambda _: "?", **columns)
