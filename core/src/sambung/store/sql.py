"""What both SQL stores do alike, written once over a `Dialect`: the group-commit queue, the
reads, and the writes whose SQL SQLite and PostgreSQL understand alike.

A backend keeps what truly differs: connecting and migrating, applying a group of ingest
requests (`_commit`), claiming and settling outbox rows, and how a statement or a transaction
reaches its database (`_fetch`, `_execute`, `_write`). Shared SQL uses `?` placeholders; the
dialect rewrites them for the driver and encodes the times and dates it binds.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable, Coroutine, Sequence
from datetime import date, datetime, timedelta
from typing import Any, ClassVar, Protocol, TypeVar

from sambung.clock import Clock, SystemClock
from sambung.errors import StoreUnavailable

from .base import (
    ACTIVE_BACKFILL_STATES,
    Backfill,
    BackfillState,
    ConnectionState,
    CredentialInfo,
    CursorChange,
    CursorState,
    DeadLetter,
    DeadLetterQuery,
    DeliveryAttempt,
    DeliveryQuery,
    DeliveryRow,
    ImportedFile,
    IngestRequest,
    IngestResult,
    Lease,
    OAuthState,
    OutboxRow,
    RawEvent,
    SinkStats,
    Store,
    StoredCredential,
    StoredRecord,
    storable,
)
from .browsing import NEWEST_FIRST, SCARCE_STATUSES, BrowseQueries
from .controls_sql import ControlSql
from .dialect import Dialect
from .monitoring_sql import MonitoringSql
from .queries import (
    ATTEMPT_COLUMNS,
    BACKFILL_COLUMNS,
    CONNECTION_STATES,
    COUNTS,
    CURSOR_CHANGE_COLUMNS,
    CURSOR_COLUMNS,
    DEAD_LETTER_ACTIVITY,
    DEAD_LETTERS,
    DELIVERIES,
    OUTBOX_COUNTS,
    PENDING_STATS,
    RECORD_ACTIVITY,
    RECORD_COLUMNS,
    backfill,
    connection_activity,
    connection_state,
    cursor_change,
    cursor_state,
    dead_letter,
    delivery_attempt,
    delivery_row,
    filters,
    stored_record,
)

_T = TypeVar("_T")
_MAX_GROUP = 512
Pending = tuple[IngestRequest, "asyncio.Future[IngestResult]"]
Row = Sequence[Any]


class Tx(Protocol):
    """One connection inside one write transaction; SQL with `?` placeholders."""

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        """Every row of a query."""
        ...

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        """The first row of a query, if any."""
        ...

    async def execute(self, sql: str, *args: Any) -> int:
        """Run one statement; how many rows it touched."""
        ...


def where(**columns: Any) -> tuple[str, list[Any]]:
    """A WHERE clause (or nothing) matching every given column exactly, with `?` placeholders."""
    return filters(lambda _: "?", **columns)


class SqlStore(BrowseQueries, MonitoringSql, ControlSql, Store):
    """The part of a SQL store both backends share; see the module docstring."""

    dialect: ClassVar[Dialect]
    # Writer tasks taking groups off the queue (one on SQLite: it has one writer connection).
    writer_count: ClassVar[int] = 1

    def __init__(self, *, owner: str, clock: Clock | None) -> None:
        self.clock = clock or SystemClock()
        # Who claims outbox rows: a claim is fenced by its owner.
        self.owner = owner
        self._queue: asyncio.Queue[Pending | None] = asyncio.Queue()
        self._writers: list[asyncio.Task[None]] = []

    # -- what a backend provides -------------------------------------------------------------

    @abc.abstractmethod
    async def _commit(self, requests: Sequence[IngestRequest]) -> list[IngestResult | Exception]:
        """Commit a group of ingest requests; per request its result or why it failed."""

    @abc.abstractmethod
    async def _fetch(self, sql: str, *args: Any) -> list[Row]:
        """The rows of one read; errors become `StoreUnavailable`."""

    @abc.abstractmethod
    async def _execute(self, sql: str, *args: Any) -> int:
        """Run one write statement on its own; how many rows it touched."""

    @abc.abstractmethod
    async def _write(self, work: Callable[[Tx], Coroutine[Any, Any, _T]]) -> _T:
        """Run `work` in one write transaction; errors become `StoreUnavailable`."""

    # -- group commit ------------------------------------------------------------------------

    def _start_writers(self) -> None:
        self._writers = [
            asyncio.create_task(self._write_loop(), name=f"{self.dialect.name}-writer-{n}")
            for n in range(self.writer_count)
        ]

    async def _stop_writers(self) -> None:
        """Let the writers commit everything queued, then end them."""
        for _ in self._writers:
            self._queue.put_nowait(None)
        await asyncio.gather(*self._writers)
        self._writers = []

    def _check_open(self) -> None:
        if not self._writers or any(w.done() for w in self._writers):
            raise StoreUnavailable("the store is not open")

    async def ingest(self, request: IngestRequest) -> IngestResult:
        """Queue one atomic write and wait until the group holding it is committed."""
        self._check_open()
        request = storable(request)  # the sender's bad text is an InvalidRecord, raised here
        future: asyncio.Future[IngestResult] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((request, future))
        return await future

    async def _write_loop(self) -> None:
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
            results = await self._commit([request for request, _ in group])
            for (_, future), result in zip(group, results, strict=True):
                if future.done():  # the waiter went away; the write stands regardless
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    # -- records, raw events, cursors, counts ------------------------------------------------

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
            outlet,
            source_system,
            kind,
            external_id,
        )
        return stored_record(rows[0], self.dialect.read_optional_time) if rows else None

    async def list_records(
        self,
        *,
        outlet: str | None = None,
        source_system: str | None = None,
        kind: str | None = None,
        limit: int = 100,
    ) -> list[StoredRecord]:
        """The most recently changed records, newest first."""
        clause, params = where(outlet=outlet, source_system=source_system, kind=kind)
        rows = await self._fetch(
            f"SELECT {RECORD_COLUMNS} FROM records{clause}"
            " ORDER BY updated_at DESC, id DESC LIMIT ?",
            *params,
            limit,
        )
        return [stored_record(row, self.dialect.read_optional_time) for row in rows]

    async def get_raw_event(self, raw_event_id: int) -> RawEvent | None:
        """A stored raw event with its verbatim body."""
        rows = await self._fetch(
            "SELECT outlet, source_system, channel, dedup_key, body, received_at, event_type,"
            " content_type FROM raw_events WHERE id = ?",
            raw_event_id,
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
            received_at=self.dialect.read_time(r[5]),
            event_type=r[6],
            content_type=r[7],
        )

    async def get_cursor(self, outlet: str, connector: str) -> str | None:
        """The committed poll cursor of one connection."""
        rows = await self._fetch(
            "SELECT value FROM cursors WHERE outlet = ? AND connector = ?", outlet, connector
        )
        return str(rows[0][0]) if rows and rows[0][0] is not None else None

    # -- cursors as operators see them ---------------------------------------------------------

    async def get_cursor_state(self, outlet: str, connector: str) -> CursorState | None:
        """One connection's cursor with its generation, in one statement."""
        rows = await self._fetch(
            f"SELECT {CURSOR_COLUMNS} FROM cursors WHERE outlet = ? AND connector = ?",
            outlet,
            connector,
        )
        return cursor_state(rows[0], self.dialect.read_time) if rows else None

    async def list_cursors(self) -> list[CursorState]:
        """Every stored cursor, by outlet and connector."""
        rows = await self._fetch(f"SELECT {CURSOR_COLUMNS} FROM cursors ORDER BY outlet, connector")
        return [cursor_state(row, self.dialect.read_time) for row in rows]

    async def change_cursor(
        self, outlet: str, connector: str, value: str | None, *, actor: str, reason: str | None
    ) -> CursorChange:
        """Set (or with None reset) a cursor, bump its generation, record the change."""
        d = self.dialect
        now = self.clock.now()

        async def change(tx: Tx) -> CursorChange:
            found = await tx.fetchrow(
                "SELECT value FROM cursors WHERE outlet = ? AND connector = ?" + d.lock_rows,
                outlet,
                connector,
            )
            before = found[0] if found is not None else None
            # The row stays on reset (value NULL): its generation must go on fencing the
            # pages of a run that read the old cursor.
            await tx.execute(
                "INSERT INTO cursors (outlet, connector, value, updated_at, moved_by, generation)"
                " VALUES (?, ?, ?, ?, ?, 1) ON CONFLICT (outlet, connector) DO UPDATE"
                " SET value = excluded.value, updated_at = excluded.updated_at,"
                " moved_by = excluded.moved_by, generation = cursors.generation + 1",
                outlet,
                connector,
                value,
                d.time(now),
                actor,
            )
            row = await tx.fetchrow(
                "INSERT INTO cursor_changes (outlet, connector, before, after, actor, reason, at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                outlet,
                connector,
                before,
                value,
                actor,
                reason,
                d.time(now),
            )
            assert row is not None
            return CursorChange(row[0], outlet, connector, before, value, actor, reason, now)

        return await self._write(change)

    async def cursor_changes(
        self, outlet: str, connector: str, *, limit: int = 20
    ) -> list[CursorChange]:
        """The operator changes of one cursor, newest first."""
        rows = await self._fetch(
            f"SELECT {CURSOR_CHANGE_COLUMNS} FROM cursor_changes"
            " WHERE outlet = ? AND connector = ? ORDER BY id DESC LIMIT ?",
            outlet,
            connector,
            limit,
        )
        return [cursor_change(row, self.dialect.read_time) for row in rows]

    # -- backfills ---------------------------------------------------------------------------

    async def create_backfill(
        self, outlet: str, connector: str, since: datetime, until: datetime, requested_by: str
    ) -> Backfill:
        """A new queued task for that window."""
        d = self.dialect
        stamp = d.time(self.clock.now())

        async def create(tx: Tx) -> Backfill:
            row = await tx.fetchrow(
                "INSERT INTO backfills (outlet, connector, since, until, state, requested_by,"
                f" created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                f" RETURNING {BACKFILL_COLUMNS}",
                outlet,
                connector,
                d.time(since),
                d.time(until),
                BackfillState.QUEUED.value,
                requested_by,
                stamp,
                stamp,
            )
            assert row is not None
            return backfill(row, d.read_optional_time)

        return await self._write(create)

    async def get_backfill(self, backfill_id: int) -> Backfill | None:
        """One task, whatever its state."""
        rows = await self._fetch(
            f"SELECT {BACKFILL_COLUMNS} FROM backfills WHERE id = ?", backfill_id
        )
        return backfill(rows[0], self.dialect.read_optional_time) if rows else None

    async def list_backfills(
        self,
        *,
        outlet: str | None = None,
        connector: str | None = None,
        active: bool = False,
        limit: int = 100,
    ) -> list[Backfill]:
        """Tasks, newest first (only queued and running ones when `active`)."""
        clause, params = where(outlet=outlet, connector=connector)
        if active:
            states = ", ".join(f"'{state.value}'" for state in ACTIVE_BACKFILL_STATES)
            clause += (" AND " if clause else " WHERE ") + f"state IN ({states})"
        rows = await self._fetch(
            f"SELECT {BACKFILL_COLUMNS} FROM backfills{clause} ORDER BY id DESC LIMIT ?",
            *params,
            limit,
        )
        return [backfill(row, self.dialect.read_optional_time) for row in rows]

    async def set_backfill_state(
        self, backfill_id: int, state: BackfillState, *, error: str | None = None
    ) -> Backfill | None:
        """Move an unfinished task to `state`, stamping its start or its end."""
        d = self.dialect
        stamp = d.time(self.clock.now())
        finished = stamp if state not in ACTIVE_BACKFILL_STATES else None
        started = stamp if state is BackfillState.RUNNING else None
        active = ", ".join(f"'{s.value}'" for s in ACTIVE_BACKFILL_STATES)
        await self._execute(
            "UPDATE backfills SET state = ?, error = ?,"
            " started_at = COALESCE(started_at, ?), finished_at = ?, updated_at = ?"
            f" WHERE id = ? AND state IN ({active})",
            state.value,
            error,
            started,
            finished,
            stamp,
            backfill_id,
        )
        return await self.get_backfill(backfill_id)

    async def counts(self) -> dict[str, int]:
        """Row counts per table."""
        return {name: count for name, count in await self._fetch(COUNTS)}

    # -- daily summaries ---------------------------------------------------------------------

    async def records_of_day(
        self, outlet: str, kind: str, business_date: date
    ) -> list[StoredRecord]:
        """Every record of `kind` at `outlet` on that business date, by id."""
        rows = await self._fetch(
            f"SELECT {RECORD_COLUMNS} FROM records"
            " WHERE outlet = ? AND kind = ? AND business_date = ? ORDER BY id",
            outlet,
            kind,
            self.dialect.day(business_date),
        )
        return [stored_record(row, self.dialect.read_optional_time) for row in rows]

    async def changed_business_dates(
        self, outlet: str, kind: str | tuple[str, ...], *, since: datetime
    ) -> dict[date, datetime]:
        """Business dates of `kind` records at `outlet` written at or after `since`."""
        d = self.dialect
        # Several kinds in one query: one read, so one newest write time covers them all.
        kinds = (kind,) if isinstance(kind, str) else kind
        marks = ", ".join("?" * len(kinds))
        rows = await self._fetch(
            f"SELECT business_date, MAX(updated_at) FROM records{d.records_by_update_time}"
            f" WHERE outlet = ? AND kind IN ({marks}) AND updated_at >= ?"
            " AND business_date IS NOT NULL GROUP BY business_date",
            outlet,
            *kinds,
            d.time(since),
        )
        return {d.read_day(day): d.read_time(last) for day, last in rows}

    # -- outbox ------------------------------------------------------------------------------

    async def list_outbox(self, *, sink: str | None = None, limit: int = 1000) -> list[OutboxRow]:
        """Outbox rows in the order they were written."""
        clause, params = where(sink=sink)
        rows = await self._fetch(
            "SELECT id, sink, record_id, revision, idempotency_key, payload, status, attempts,"
            f" next_attempt_at, created_at FROM outbox{clause} ORDER BY id LIMIT ?",
            *params,
            limit,
        )
        time = self.dialect.read_time
        return [
            OutboxRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], time(r[8]), time(r[9]))
            for r in rows
        ]

    async def release_claims(self, sink: str | None = None) -> int:
        """Drop this owner's claims (of one sink, if given); other owners' expire on their own.

        On SQLite every claim: one process uses the file, so any claim is this one's or was
        left by one that is gone.
        """
        # One process at a time uses a single-process store (SQLite): every claim there is a
        # dead process's or this one's. PostgreSQL releases only this replica's own.
        owner = None if self.single_process else self.owner
        clause, params = where(claimed_by=owner, sink=sink)
        return await self._execute(
            "UPDATE outbox SET claimed_until = NULL, claimed_by = NULL"
            " WHERE claimed_until IS NOT NULL" + clause.replace(" WHERE ", " AND ", 1),
            *params,
        )

    async def outbox_stats(self) -> dict[str, SinkStats]:
        """Counts per sink of pending, retrying, dead and delivered rows."""
        time = self.dialect.read_optional_time
        counts: dict[str, dict[str, int]] = {}
        for sink, status, count in await self._fetch(OUTBOX_COUNTS):
            counts.setdefault(sink, {})[status] = count
        pending = {r[0]: (time(r[1]), r[2]) for r in await self._fetch(PENDING_STATS)}
        stats = {}
        for sink, by_status in counts.items():
            oldest, retrying = pending.get(sink, (None, 0))
            stats[sink] = SinkStats(
                sink,
                by_status.get("pending", 0),
                oldest,
                retrying,
                by_status.get("dead", 0),
                by_status.get("delivered", 0),
            )
        return stats

    async def prune_outbox(self, *, before: datetime, limit: int = 5000) -> int:
        """Delete up to `limit` delivered or superseded rows finished before `before`, and
        their kept delivery attempts with them."""

        async def prune(tx: Tx) -> int:
            rows = await tx.fetch(
                "SELECT id FROM outbox"
                " WHERE status IN ('delivered', 'superseded') AND delivered_at < ?"
                " AND NOT EXISTS (SELECT 1 FROM dead_letters AS d WHERE d.outbox_id = outbox.id)"
                " LIMIT ?",
                self.dialect.time(before),
                limit,
            )
            if not rows:
                return 0
            ids = [row[0] for row in rows]
            marks = ", ".join("?" * len(ids))
            await tx.execute(f"DELETE FROM delivery_attempts WHERE outbox_id IN ({marks})", *ids)
            return await tx.execute(f"DELETE FROM outbox WHERE id IN ({marks})", *ids)

        return await self._write(prune)

    # -- delivery attempts -------------------------------------------------------------------

    async def list_deliveries(self, query: DeliveryQuery) -> list[DeliveryRow]:
        """Outbox rows matching `query`, newest first, each with its latest attempt."""
        clause, params = where(
            **{"o.sink": query.sink, "o.status": query.status, "r.outlet": query.outlet}
        )
        source = DELIVERIES
        if query.status not in SCARCE_STATUSES:
            # Most rows match: walk the primary key backwards and stop at the limit, rather
            # than let SQLite read every match through an index and sort them (60 ms a month).
            # Pending and dead rows are few, and an index finds them faster than a walk.
            hint = NEWEST_FIRST.get(self.dialect.name, "")
            source = DELIVERIES.replace("FROM outbox AS o", f"FROM outbox AS o{hint}", 1)
        rows = await self._fetch(
            f"{source}{clause} ORDER BY o.id DESC LIMIT ?", *params, query.limit
        )
        return [delivery_row(row, self.dialect.read_optional_time) for row in rows]

    async def get_delivery(self, outbox_id: int) -> DeliveryRow | None:
        """One outbox row with its latest attempt."""
        rows = await self._fetch(f"{DELIVERIES} WHERE o.id = ?", outbox_id)
        return delivery_row(rows[0], self.dialect.read_optional_time) if rows else None

    async def list_delivery_attempts(self, outbox_id: int) -> list[DeliveryAttempt]:
        """Every kept attempt of one outbox row, oldest first."""
        rows = await self._fetch(
            f"SELECT {ATTEMPT_COLUMNS} FROM delivery_attempts AS a WHERE a.outbox_id = ?"
            " ORDER BY a.id",
            outbox_id,
        )
        return [delivery_attempt(row, self.dialect.read_optional_time) for row in rows]

    async def prune_delivery_attempts(self, *, before: datetime, limit: int = 5000) -> int:
        """Delete those of the oldest `limit` attempts started before `before`.

        Attempts are written in about the order they start, so the oldest ids are the oldest
        attempts: this walks the primary key instead of an index on `started_at` that every
        settle would have to write. Called until it deletes nothing.
        """
        return await self._execute(
            "DELETE FROM delivery_attempts WHERE id IN (SELECT id FROM delivery_attempts"
            " ORDER BY id LIMIT ?) AND started_at < ?",
            limit,
            self.dialect.time(before),
        )

    # -- dead letters ------------------------------------------------------------------------

    async def find_dead_letters(self, query: DeadLetterQuery) -> list[DeadLetter]:
        """Dead letters matching `query`, newest first."""
        clause, params = where(
            **{
                "d.stage": query.stage,
                "d.outlet": query.outlet,
                "d.connector": query.connector,
                "d.status": query.status,
                "o.sink": query.sink,
                "d.error_type": query.error_type,
            }
        )
        if query.since is not None:
            clause += (" AND " if clause else " WHERE ") + "d.created_at >= ?"
            params.append(self.dialect.time(query.since))
        rows = await self._fetch(
            f"{DEAD_LETTERS}{clause} ORDER BY d.id DESC LIMIT ?", *params, query.limit
        )
        return [dead_letter(row, self.dialect.read_optional_time) for row in rows]

    async def get_dead_letter(self, dead_letter_id: int) -> DeadLetter | None:
        """One dead letter, whatever its status."""
        rows = await self._fetch(f"{DEAD_LETTERS} WHERE d.id = ?", dead_letter_id)
        return dead_letter(rows[0], self.dialect.read_optional_time) if rows else None

    async def requeue_dead_letter(self, dead_letter_id: int, *, now: datetime) -> bool:
        """Put an open delivery dead letter's row back to pending (or superseded)."""
        stamp = self.dialect.time(now)

        async def requeue(tx: Tx) -> bool:
            found = await tx.fetchrow(
                "SELECT outbox_id FROM dead_letters"
                " WHERE id = ? AND stage = 'delivery' AND status = 'open'"
                f" AND outbox_id IS NOT NULL{self.dialect.lock_rows}",
                dead_letter_id,
            )
            if found is None:
                return False
            newer = await tx.fetchrow(
                "SELECT 1 FROM outbox AS o JOIN outbox AS n ON n.sink = o.sink"
                " AND n.record_id = o.record_id AND n.revision > o.revision"
                " AND n.status IN ('pending', 'delivered') WHERE o.id = ? LIMIT 1",
                found[0],
            )
            if newer is not None:  # delivering it now would put an old version over a new one
                await tx.execute(
                    "UPDATE outbox SET status = 'superseded', delivered_at = ? WHERE id = ?",
                    stamp,
                    found[0],
                )
            else:
                await tx.execute(
                    "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ?,"
                    " claimed_until = NULL, claimed_by = NULL, last_error = NULL WHERE id = ?",
                    stamp,
                    found[0],
                )
            await tx.execute(
                "UPDATE dead_letters SET status = 'replayed', attempts = attempts + 1,"
                " updated_at = ? WHERE id = ?",
                stamp,
                dead_letter_id,
            )
            return True

        return await self._write(requeue)

    async def resolve_dead_letter(self, dead_letter_id: int, status: str) -> bool:
        """Move an open dead letter to `replayed` or `discarded`."""
        if status not in ("replayed", "discarded"):
            raise ValueError(f"a dead letter cannot become {status!r}")
        bump = ", attempts = attempts + 1" if status == "replayed" else ""
        touched = await self._execute(
            f"UPDATE dead_letters SET status = ?, updated_at = ?{bump}"
            " WHERE id = ? AND status = 'open'",
            status,
            self.dialect.time(self.clock.now()),
            dead_letter_id,
        )
        return touched == 1

    async def connection_activity(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Per (outlet, source_system): records, open dead letters, last success and error."""
        return connection_activity(
            await self._fetch(RECORD_ACTIVITY),
            await self._fetch(DEAD_LETTER_ACTIVITY),
            self.dialect.read_optional_time,
        )

    # -- imported files (file-drop) ----------------------------------------------------------

    async def get_imported_file(
        self, outlet: str, connector: str, sha256: str
    ) -> ImportedFile | None:
        """The import of a file with this content at this connection, if it happened."""
        rows = await self._fetch(
            "SELECT outlet, connector, sha256, name, size, rows_imported, rows_rejected,"
            " channel, imported_at FROM imported_files"
            " WHERE outlet = ? AND connector = ? AND sha256 = ?",
            outlet,
            connector,
            sha256,
        )
        if not rows:
            return None
        o, c, sha, name, size, imported, rejected, channel, at = rows[0]
        return ImportedFile(
            o, c, sha, name, size, imported, rejected, channel, self.dialect.read_time(at)
        )

    async def record_imported_file(self, entry: ImportedFile) -> None:
        """Remember a file as imported; a repeat is a no-op."""
        await self._execute(
            "INSERT INTO imported_files (outlet, connector, sha256, name, size,"
            " rows_imported, rows_rejected, channel, imported_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            entry.outlet,
            entry.connector,
            entry.sha256,
            entry.name,
            entry.size,
            entry.rows_imported,
            entry.rows_rejected,
            entry.channel,
            self.dialect.time(entry.imported_at),
        )

    # -- connection states -------------------------------------------------------------------

    async def save_connection_state(self, state: ConnectionState) -> None:
        """Upsert one connection's state; its `records_fetched` adds to the stored total."""
        time = self.dialect.optional_time
        await self._execute(
            "INSERT INTO connection_states (outlet, connector, mode, state, last_run_at,"
            " last_success_at, last_error, last_error_at, records_fetched,"
            " refused_credentials, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (outlet, connector, mode) DO UPDATE SET state = excluded.state,"
            " last_run_at = COALESCE(excluded.last_run_at, connection_states.last_run_at),"
            " last_success_at = COALESCE(excluded.last_success_at,"
            " connection_states.last_success_at),"
            " last_error = COALESCE(excluded.last_error, connection_states.last_error),"
            " last_error_at = COALESCE(excluded.last_error_at, connection_states.last_error_at),"
            " records_fetched = connection_states.records_fetched + excluded.records_fetched,"
            " refused_credentials = excluded.refused_credentials,"
            " updated_at = excluded.updated_at",
            state.outlet,
            state.connector,
            state.mode,
            state.state.value,
            time(state.last_run_at),
            time(state.last_success_at),
            state.last_error,
            time(state.last_error_at),
            state.records_fetched,
            state.refused_credentials,
            self.dialect.time(self.clock.now()),
        )

    async def list_connection_states(self) -> list[ConnectionState]:
        """Every recorded connection state with its committed cursor."""
        rows = await self._fetch(CONNECTION_STATES)
        return [connection_state(r, self.dialect.read_optional_time) for r in rows]

    # -- credentials and OAuth states --------------------------------------------------------

    async def save_credential(self, credential: StoredCredential) -> None:
        """Insert or replace one connection's (already encrypted) credential."""
        await self._execute(
            "INSERT INTO credentials (outlet, connector, kind, secret, expires_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (outlet, connector) DO UPDATE SET"
            " kind = excluded.kind, secret = excluded.secret,"
            " expires_at = excluded.expires_at, updated_at = excluded.updated_at",
            credential.outlet,
            credential.connector,
            credential.kind,
            credential.secret,
            self.dialect.optional_time(credential.expires_at),
            self.dialect.time(credential.updated_at),
        )

    async def get_credential(self, outlet: str, connector: str) -> StoredCredential | None:
        """One connection's credential, still encrypted."""
        rows = await self._fetch(
            "SELECT outlet, connector, kind, secret, expires_at, updated_at FROM credentials"
            " WHERE outlet = ? AND connector = ?",
            outlet,
            connector,
        )
        if not rows:
            return None
        o, c, kind, secret, expires, updated = rows[0]
        d = self.dialect
        return StoredCredential(
            o, c, kind, bytes(secret), d.read_optional_time(expires), d.read_time(updated)
        )

    async def list_credentials(self) -> list[CredentialInfo]:
        """Metadata of every stored credential; the secret column is never read."""
        rows = await self._fetch(
            "SELECT outlet, connector, kind, expires_at, updated_at FROM credentials"
            " ORDER BY outlet, connector"
        )
        d = self.dialect
        return [
            CredentialInfo(r[0], r[1], r[2], d.read_optional_time(r[3]), d.read_time(r[4]))
            for r in rows
        ]

    async def delete_credential(self, outlet: str, connector: str) -> bool:
        """Forget one connection's credential."""
        return (
            await self._execute(
                "DELETE FROM credentials WHERE outlet = ? AND connector = ?", outlet, connector
            )
            > 0
        )

    async def create_oauth_state(self, state: OAuthState) -> None:
        """Remember a handed-out state; states expired for a day are dropped on the way."""
        time = self.dialect.time

        async def create(tx: Tx) -> None:
            # Kept a day past expiry, so a late replay is told apart from a forged state.
            await tx.execute(
                "DELETE FROM oauth_states WHERE expires_at < ?",
                time(state.created_at - timedelta(days=1)),
            )
            await tx.execute(
                "INSERT INTO oauth_states (state_hash, outlet, connector, redirect_uri, secret,"
                " created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                state.state_hash,
                state.outlet,
                state.connector,
                state.redirect_uri,
                state.secret,
                time(state.created_at),
                time(state.expires_at),
            )

        await self._write(create)

    async def consume_oauth_state(self, state_hash: str, *, now: datetime) -> OAuthState | None:
        """Mark a state used and return it as it was; in one transaction that holds the row
        (PostgreSQL: its lock; SQLite: the write lock), so one caller is the first."""
        d = self.dialect

        async def consume(tx: Tx) -> OAuthState | None:
            found = await tx.fetchrow(
                "SELECT state_hash, outlet, connector, redirect_uri, secret, created_at,"
                f" expires_at, consumed_at FROM oauth_states WHERE state_hash = ?{d.lock_rows}",
                state_hash,
            )
            if found is None:
                return None
            if found[7] is None:
                await tx.execute(
                    "UPDATE oauth_states SET consumed_at = ? WHERE state_hash = ?",
                    d.time(now),
                    state_hash,
                )
            return OAuthState(
                state_hash=found[0],
                outlet=found[1],
                connector=found[2],
                redirect_uri=found[3],
                secret=bytes(found[4]) if found[4] is not None else None,
                created_at=d.read_time(found[5]),
                expires_at=d.read_time(found[6]),
                consumed_at=d.read_optional_time(found[7]),
            )

        return await self._write(consume)

    # -- leases ------------------------------------------------------------------------------

    async def acquire_or_renew_lease(
        self, name: str, owner: str, *, ttl: float, now: datetime
    ) -> bool:
        """Take or renew a lease in one statement (atomic: the row lock, or SQLite's write lock)."""
        stamp, until = self.dialect.time(now), self.dialect.time(now + timedelta(seconds=ttl))
        touched = await self._execute(
            "INSERT INTO leases (name, owner, expires_at, acquired_at, renewed_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE"
            " SET owner = excluded.owner, expires_at = excluded.expires_at,"
            " renewed_at = excluded.renewed_at,"
            " acquired_at = CASE WHEN leases.owner = excluded.owner"
            "  THEN leases.acquired_at ELSE excluded.acquired_at END"
            " WHERE leases.owner = excluded.owner OR leases.expires_at <= ?",
            name,
            owner,
            until,
            stamp,
            stamp,
            stamp,
        )
        return touched == 1

    async def release_lease(self, name: str, owner: str) -> bool:
        """Delete the lease if `owner` holds it."""
        deleted = await self._execute(
            "DELETE FROM leases WHERE name = ? AND owner = ?", name, owner
        )
        return deleted == 1

    async def list_leases(self, prefix: str = "") -> list[Lease]:
        """Every lease whose name starts with `prefix`, by name."""
        rows = await self._fetch(
            "SELECT name, owner, expires_at, acquired_at, renewed_at FROM leases"
            " WHERE substr(name, 1, ?) = ? ORDER BY name",
            len(prefix),
            prefix,
        )
        time = self.dialect.read_time
        return [Lease(r[0], r[1], time(r[2]), time(r[3]), time(r[4])) for r in rows]
