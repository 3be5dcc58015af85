"""The shared store: PostgreSQL through an asyncpg pool, for several daemon replicas.

Ingest group-commits as SQLite's writer does: requests queue up, a writer task takes everything
waiting and applies it in one transaction with one statement per table (arrays through
`unnest`, never a round trip per row). The rows a group touches are locked in id order, so two
replicas writing the same record serialise on it; a race that still slips through (two replicas
inserting the same new record or raw event at once, a deadlock) rolls the group back and runs
it again, when the other side's rows are visible. The outbox is claimed with `FOR UPDATE SKIP
LOCKED`, so replicas share it and one row is delivered by one replica at a time.

Every claim names its owner and expires unless its owner renews it (the dispatcher does, while
it delivers): another replica takes a row over only once its claim expired, never while its
owner is alive, whatever happened to one of that owner's sessions. Liveness is never read from
a connection.

Connections come from an asyncpg pool, one operation at a time per connection (every use is
`async with` one acquired connection, inside one task). A connection whose operation failed at
the connection level (the server terminated it, the socket broke, the protocol is in an
unknown state) is terminated at once, so the pool never hands it out again and opens a fresh
one on the next acquire: every caller recovers as soon as the database answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

import asyncpg
import structlog

from sambung.clock import Clock
from sambung.errors import ConfigError, StoreUnavailable

from .base import ClaimedRow, DeadLetter, IngestRequest, IngestResult, LeaseHold, OutboxSettlement
from .dialect import POSTGRES, numbered
from .migrations import check_known
from .migrations import postgres_migrations as migrations
from .plan import (
    BACKFILL_PROGRESS,
    Key,
    PlannedRow,
    RawKey,
    backfill_progress,
    fence_group,
    furthest_cursors,
    leases_of,
    plan_group,
)
from .queries import (
    DEAD_LETTERS,
    DUE_OUTBOX,
    INSERT_DEAD_LETTER,
    claimed_row,
    dead_letter,
    dead_letter_values,
    split_settlements,
)
from .sql import Row, SqlStore, Tx

__all__ = ["PostgresStore", "create_schema", "drop_schema", "migrations"]

log = structlog.get_logger(__name__)

# A group that lost a race (see the module docstring) is run again this many times at most.
_RACE_RETRIES = 5
_RACES = (asyncpg.UniqueViolationError, asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
# The server or the connection is gone, or the connection is in a state nobody can vouch for
# (asyncpg's InternalClientError: "cannot switch to state …; another operation is in
# progress", seen on a connection the server had just terminated): the connection is
# discarded, and there is no point trying each request of a group on its own.
_GONE = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
)
_FAILURES = (*_GONE, asyncpg.PostgresError)
# A pooled connection the server ended while it sat idle: asyncpg read the server's farewell
# but not yet the end of the socket, so the pool hands it out, and the first operation fails
# in the client before anything is sent ("cannot switch to state …"). The connection is
# discarded and the operation goes out on another one, up to once per pooled connection.
_STALE = asyncpg.InternalClientError
# Milliseconds a session may sit idle inside a transaction before the server ends it (our
# transactions run statement after statement; only a frozen or starved process idles in one).
_IDLE_IN_TRANSACTION_MS = 30_000
_T = TypeVar("_T")
Conn = Any  # an asyncpg connection (asyncpg ships no type information)
_CLAIM = numbered(
    f"WITH due AS (SELECT o.id FROM outbox AS o WHERE {DUE_OUTBOX} FOR UPDATE OF o SKIP LOCKED)"
    " UPDATE outbox AS o SET claimed_until = ?, claimed_by = ?"
    " FROM due, records AS r WHERE o.id = due.id AND r.id = o.record_id"
    " RETURNING o.id, o.sink, o.record_id, o.revision, o.idempotency_key, o.payload,"
    " o.attempts, o.created_at, r.outlet, r.source_system, r.kind, o.next_attempt_at"
)


def _same(value: _T) -> _T:
    return value


def _day(text: str | None) -> date | None:
    """A planned row's ISO business date as PostgreSQL's `date`."""
    return date.fromisoformat(text) if text is not None else None


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows as one list per column, for `unnest($1::type[], ...)`."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * width


class PostgresStore(SqlStore):
    """The store for replicas: one PostgreSQL database shared by every daemon."""

    dialect = POSTGRES
    writer_count = 2

    def __init__(
        self,
        url: str,
        *,
        owner: str | None = None,
        pool_size: int = 10,
        migrate: bool = True,
        clock: Clock | None = None,
    ) -> None:
        # Unique per open store unless given: a replica that names itself the same way after a
        # restart frees its own claims at once (dead owners' claims are freed in any case).
        owner = owner or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        super().__init__(owner=owner, clock=clock)
        self.url = url
        self._pool_size = pool_size
        self._auto_migrate = migrate
        self._pool: Any = None

    # -- lifecycle -------------------------------------------------------------------------

    async def _connect(self) -> Conn:
        try:
            return await asyncpg.connect(self.url)
        except (*_FAILURES, ValueError) as err:
            raise ConfigError(
                f"store.url: cannot connect to PostgreSQL ({type(err).__name__}: {err})"
            ) from err

    async def open(self) -> None:
        """Connect, migrate (unless told not to), open the pool and start the writers."""
        conn = await self._connect()
        try:
            if self._auto_migrate:
                await self._migrate(conn)
            else:
                await self._check_version(conn)
        finally:
            await conn.close()
        # The replica's name in pg_stat_activity, unless the URL names the sessions itself. A
        # transaction left open by a replica that froze (SIGSTOP, a paused VM) would hold its
        # row locks (records, the lease a poll page is fenced by) until it thaws: the server
        # ends it instead, so the others carry on and the frozen commit fails.
        settings = {
            "application_name": self.owner[:63],
            "idle_in_transaction_session_timeout": str(_IDLE_IN_TRANSACTION_MS),
        }
        settings = {k: v for k, v in settings.items() if f"{k}=" not in self.url}
        try:
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=1,
                max_size=self._pool_size,
                reset=_keep_session,
                server_settings=settings,
            )
        except (*_FAILURES, ValueError) as err:
            raise ConfigError(
                f"store.url: cannot connect to PostgreSQL ({type(err).__name__}: {err})"
            ) from err
        self._start_writers()

    async def migrate(self) -> list[str]:
        """Apply pending migrations on a connection of its own; the names applied."""
        conn = await self._connect()
        try:
            return await self._migrate(conn)
        finally:
            await conn.close()

    async def _migrate(self, conn: Conn) -> list[str]:
        # One transaction under an advisory lock: replicas starting together take turns, and
        # the second finds the work done. DDL is transactional here, so a failure leaves nothing.
        async with conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended("
                "'sambung.migrate.' || COALESCE(current_schema(), ''), 0))"
            )
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
                " name text NOT NULL, applied_at timestamptz NOT NULL)"
            )
            applied = await PostgresStore._check_version(conn)
            done = []
            for version, name, sql in migrations():
                if version in applied:
                    continue
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations VALUES ($1, $2, $3)",
                    version,
                    name,
                    self.clock.now(),
                )
                done.append(name)
            return done

    @staticmethod
    async def _check_version(conn: Conn) -> set[int]:
        exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
        applied = (
            {r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            if exists
            else set()
        )
        check_known(applied, migrations())
        return applied

    async def close(self) -> None:
        """Drain queued writes, stop the writers and close the pool."""
        await self._stop_writers()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    # -- ingest (group commit) -------------------------------------------------------------

    async def _commit(self, requests: Sequence[IngestRequest]) -> list[IngestResult | Exception]:
        """Commit a group (`_commit_group`, which tests wrap)."""
        return await self._commit_group(requests)

    async def _commit_group(
        self, requests: Sequence[IngestRequest]
    ) -> list[IngestResult | Exception]:
        """Commit a group in one transaction; if it fails, commit each request on its own.

        Lost races are retried as a whole, and so is a group that met a stale pooled connection;
        any other failure falls back to one request per transaction, so one bad request does
        not fail the others that shared its group.
        """
        races = stale = 0
        while races < _RACE_RETRIES:
            try:
                async with self._connection() as conn, conn.transaction():
                    # Fenced writes first check their lease, in this transaction; the row lock
                    # (FOR SHARE) makes a takeover of the lease wait until this commit is done.
                    held = await self._held_leases(conn, requests)
                    kept, merge = fence_group(requests, held)
                    return merge(await self._apply_group(conn, kept) if kept else [])
            except _RACES:
                await asyncio.sleep(0.001 * 2**races)
                races += 1
            except _STALE as err:
                stale += 1
                if stale > self._pool_size:
                    return [_unavailable("commit failed", err)] * len(requests)
            except _GONE as err:
                return [_unavailable("commit failed", err)] * len(requests)
            except StoreUnavailable as err:  # the store is not open
                return [err] * len(requests)
            except Exception as err:
                if len(requests) == 1:
                    return [_unavailable("write failed", err)]
                break
        else:
            if len(requests) == 1:
                return [StoreUnavailable("write failed: kept losing a race with another writer")]
        return [(await self._commit_group([request]))[0] for request in requests]

    async def _held_leases(self, conn: Conn, requests: Sequence[IngestRequest]) -> set[LeaseHold]:
        """Which of the leases the group is fenced by are held by their owner right now."""
        wanted = leases_of(requests)
        if not wanted:
            return set()
        rows = await conn.fetch(
            "SELECT l.name, l.owner FROM leases AS l"
            " JOIN unnest($1::text[], $2::text[]) AS w(name, owner)"
            " ON l.name = w.name AND l.owner = w.owner"
            " WHERE l.expires_at > $3 ORDER BY l.name FOR SHARE OF l",
            [lease.name for lease in wanted],
            [lease.owner for lease in wanted],
            self.clock.now(),
        )
        return {LeaseHold(name, owner) for name, owner in rows}

    async def _apply_group(
        self, conn: Conn, requests: Sequence[IngestRequest]
    ) -> list[IngestResult]:
        """Apply a group with a fixed number of statements, however many requests it holds."""
        now = self.clock.now()
        raw_ids = await self._existing_raw_events(conn, requests)
        stored = await self._existing_records(conn, requests)
        raw_keys = {(r.raw.outlet, r.raw.source_system, r.raw.dedup_key) for r in requests if r.raw}
        keys = {record.key for request in requests for record in request.records}
        raw_pool: list[int] = []
        record_pool: list[int] = []
        if len(raw_keys) > len(raw_ids) or len(keys) > len(stored):
            # Fresh ids for the new rows up front, so the plan can name them (gaps are fine).
            raw_pool, record_pool = await conn.fetchrow(
                "SELECT ARRAY(SELECT nextval('raw_events_id_seq') FROM generate_series(1, $1)),"
                " ARRAY(SELECT nextval('records_id_seq') FROM generate_series(1, $2))",
                len(raw_keys) - len(raw_ids),
                len(keys) - len(stored),
            )
        plan = plan_group(
            requests,
            raw_ids,
            stored,
            now=now,
            stamp=_same,
            new_raw_id=iter(raw_pool).__next__,
            new_record_id=iter(record_pool).__next__,
        )
        # New unique keys go in in one order everywhere, so two writers inserting some of the
        # same keys wait on each other instead of deadlocking (the loser then runs again).
        plan.raw_rows.sort(key=lambda row: (row[1], row[2], row[4]))
        if plan.raw_rows:
            await conn.execute(
                "INSERT INTO raw_events (id, outlet, source_system, channel, dedup_key,"
                " event_type, content_type, body, received_at) SELECT * FROM unnest($1::bigint[],"
                " $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],"
                " $8::bytea[], $9::timestamptz[])",
                *_columns(plan.raw_rows, 9),
            )
        inserts = sorted((row for row in plan.touched.values() if row.new), key=_by_key)
        if inserts:
            await conn.execute(
                "INSERT INTO records (id, outlet, source_system, kind, external_id, fingerprint,"
                " revision, source_updated_at, payload, raw_event_id, business_date, webhook_at,"
                " created_at, updated_at) SELECT *, $13::timestamptz, $13::timestamptz FROM"
                " unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[],"
                " $6::text[], $7::integer[], $8::timestamptz[], $9::text[], $10::bigint[],"
                " $11::date[], $12::timestamptz[])",
                *_columns(
                    [
                        (
                            row.id,
                            *row.key,
                            row.fingerprint,
                            row.revision,
                            row.version,
                            row.payload,
                            row.raw_event_id,
                            _day(row.business_date),
                            row.webhook_at,
                        )
                        for row in inserts
                    ],
                    12,
                ),
                now,
            )
        updates = [row for row in plan.touched.values() if not row.new]
        if updates:
            await conn.execute(
                "UPDATE records AS r SET fingerprint = u.fingerprint, revision = u.revision,"
                " source_updated_at = u.version, payload = COALESCE(u.payload, r.payload),"
                " raw_event_id = u.raw_event_id,"
                " updated_at = CASE WHEN u.payload IS NULL THEN r.updated_at ELSE $9 END,"
                " business_date = CASE WHEN u.payload IS NULL THEN r.business_date"
                " ELSE u.business_date END, webhook_at = COALESCE(r.webhook_at, u.webhook_at)"
                " FROM unnest($1::bigint[], $2::text[], $3::integer[], $4::timestamptz[],"
                " $5::text[], $6::bigint[], $7::date[], $8::timestamptz[]) AS u(id, fingerprint,"
                " revision, version, payload, raw_event_id, business_date, webhook_at)"
                " WHERE r.id = u.id",
                *_columns(
                    [
                        (
                            row.id,
                            row.fingerprint,
                            row.revision,
                            row.version,
                            row.payload,
                            row.raw_event_id,
                            _day(row.business_date),
                            row.webhook_at,
                        )
                        for row in updates
                    ],
                    8,
                ),
                now,
            )
        if plan.outbox_rows:
            await conn.execute(
                "INSERT INTO outbox (sink, record_id, revision, idempotency_key, payload,"
                " next_attempt_at, created_at) SELECT * FROM unnest($1::text[], $2::bigint[],"
                " $3::integer[], $4::text[], $5::text[], $6::timestamptz[], $7::timestamptz[])"
                " ON CONFLICT (idempotency_key) DO NOTHING",
                *_columns(plan.outbox_rows, 7),
            )
        results = plan.results
        # Dead letters are rare (a failed body): one statement each, to learn each one's id.
        for index, request in enumerate(requests):
            if (dl := request.dead_letter) is not None:
                values = dead_letter_values(dl, results[index].raw_event_id, now)
                dead_letter_id = await conn.fetchval(numbered(INSERT_DEAD_LETTER), *values)
                if dead_letter_id is not None:
                    results[index] = replace(results[index], dead_letter_id=dead_letter_id)
        if cursors := furthest_cursors(requests):
            # The generation is compared in ON CONFLICT's WHERE, which PostgreSQL evaluates on
            # the row as a concurrent operator change (`change_cursor`) left it.
            await conn.execute(
                "INSERT INTO cursors AS c (outlet, connector, value, moved_by, generation,"
                " updated_at) SELECT *, $6::timestamptz FROM unnest($1::text[], $2::text[],"
                " $3::text[], $4::text[], $5::bigint[])"
                " ON CONFLICT (outlet, connector) DO UPDATE"
                " SET value = excluded.value, updated_at = excluded.updated_at,"
                " moved_by = excluded.moved_by"
                " WHERE (c.value IS NULL OR excluded.value > c.value)"
                " AND c.generation = excluded.generation",
                *_columns(
                    [(c.outlet, c.connector, c.value, c.moved_by, c.generation) for c in cursors],
                    5,
                ),
                now,
            )
        for progress in backfill_progress(requests, results, now):
            await conn.execute(numbered(BACKFILL_PROGRESS), *progress)
        return results

    @staticmethod
    async def _existing_raw_events(
        conn: Conn, requests: Sequence[IngestRequest]
    ) -> dict[RawKey, int]:
        keys = {(r.raw.outlet, r.raw.source_system, r.raw.dedup_key) for r in requests if r.raw}
        if not keys:
            return {}
        rows = await conn.fetch(
            "SELECT k.o, k.s, k.d, r.id FROM unnest($1::text[], $2::text[], $3::text[])"
            " AS k(o, s, d) JOIN raw_events AS r"
            " ON r.outlet = k.o AND r.source_system = k.s AND r.dedup_key = k.d",
            *_columns(list(keys), 3),
        )
        return {(o, s, d): i for o, s, d, i in rows}

    @staticmethod
    async def _existing_records(
        conn: Conn, requests: Sequence[IngestRequest]
    ) -> dict[Key, PlannedRow]:
        keys = {record.key for request in requests for record in request.records}
        if not keys:
            return {}
        # Locked in id order, the same in every writer, so two groups cannot deadlock on them.
        rows = await conn.fetch(
            "SELECT r.outlet, r.source_system, r.kind, r.external_id, r.id, r.fingerprint,"
            " r.revision, r.source_updated_at, r.raw_event_id, r.webhook_at FROM records AS r"
            " JOIN unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS k(o, s, kd, e)"
            " ON r.outlet = k.o AND r.source_system = k.s AND r.kind = k.kd"
            " AND r.external_id = k.e ORDER BY r.id FOR UPDATE OF r",
            *_columns(list(keys), 4),
        )
        found: dict[Key, PlannedRow] = {}
        for (
            outlet,
            source,
            kind,
            external_id,
            id,
            fingerprint,
            revision,
            version,
            raw,
            hook,
        ) in rows:
            found[(outlet, source, kind, external_id)] = PlannedRow(
                id, fingerprint, revision, version, False, raw_event_id=raw, webhook_at=hook
            )
        return found

    # -- plumbing for everything else ------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Conn]:
        """One pooled connection for the caller alone; terminated (never pooled again) when an
        operation on it failed at the connection level."""
        if self._pool is None:
            raise StoreUnavailable("the store is not open")
        async with self._pool.acquire() as conn:
            try:
                yield conn
            except _GONE:
                # Whatever state it is in, it is not one to hand to the next caller.
                conn.terminate()
                raise

    async def _run(self, work: Callable[[Conn], Awaitable[_T]], *, transaction: bool = False) -> _T:
        """Run `work` on a pooled connection (in one transaction if asked); errors become
        `StoreUnavailable`."""
        for attempt in range(self._pool_size + 1):
            try:
                async with self._connection() as conn:
                    if not transaction:
                        return await work(conn)
                    async with conn.transaction():
                        return await work(conn)
            except _STALE as err:
                if attempt == self._pool_size:
                    raise _unavailable("query failed", err) from err
            except _FAILURES as err:
                raise _unavailable("query failed", err) from err
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _fetch(self, sql: str, *args: Any) -> list[Row]:
        """The rows of one read (`?` placeholders or asyncpg's own)."""
        rows: list[Row] = await self._run(lambda conn: conn.fetch(numbered(sql), *args))
        return rows

    async def _execute(self, sql: str, *args: Any) -> int:
        """Run one statement outside a transaction; how many rows it touched."""
        return _touched(await self._run(lambda conn: conn.execute(numbered(sql), *args)))

    async def _write(self, work: Callable[[Tx], Coroutine[Any, Any, _T]]) -> _T:
        """Run shared transaction code in one transaction on a pooled connection."""
        return await self._run(lambda conn: work(_PoolTx(conn)), transaction=True)

    # -- outbox (claimed with FOR UPDATE SKIP LOCKED, shared by replicas) --------------------

    async def claim_outbox(
        self, sink: str, *, now: datetime, limit: int, lease_seconds: float
    ) -> list[ClaimedRow]:
        """Claim up to `limit` due rows of `sink`, oldest first, one revision per record.

        Rows another replica is claiming right now are skipped, not waited for. An older
        revision still pending (claimed or not) holds back the newer ones of its record.
        """
        until = now + timedelta(seconds=lease_seconds)
        rows = await self._fetch(_CLAIM, sink, now, now, limit, until, self.owner)
        rows.sort(key=lambda r: (r[11], r[0]))
        return [claimed_row(r, _same) for r in rows]

    async def renew_claims(
        self, ids: Sequence[int], *, now: datetime, lease_seconds: float
    ) -> set[int]:
        """Extend this owner's claims on `ids`; the ids it still holds."""
        if not ids:
            return set()
        rows = await self._fetch(
            "UPDATE outbox SET claimed_until = $2 WHERE id = ANY($1::bigint[])"
            " AND status = 'pending' AND claimed_by = $3 RETURNING id",
            list(ids),
            now + timedelta(seconds=lease_seconds),
            self.owner,
        )
        return {row[0] for row in rows}

    async def settle_outbox(
        self, settlements: Sequence[OutboxSettlement], *, now: datetime
    ) -> list[DeadLetter]:
        """Record delivered, retry-later and dead rows in one transaction."""
        split = split_settlements(settlements, now, _same)
        delivered, retry, attempts = split.delivered, split.retry, split.attempts
        dead = [(s.id, s.error_type or "DeliveryFailed", s.error or "") for s in split.dead]

        async def settle(conn: Conn) -> list[DeadLetter]:
            if attempts:  # every attempt made is kept, fenced or not: it was sent all the same
                await conn.execute(_INSERT_ATTEMPTS, *_columns(attempts, 13))
            # Fenced: only rows still pending and claimed by this owner. A claim that passed on
            # belongs to its new holder, who delivers (same webhook-id) and settles it.
            if delivered:
                await conn.execute(
                    "UPDATE outbox SET status = 'delivered', attempts = attempts + 1,"
                    " delivered_at = $2, last_error = NULL, claimed_until = NULL,"
                    " claimed_by = NULL WHERE id = ANY($1::bigint[]) AND status = 'pending'"
                    " AND claimed_by = $3",
                    delivered,
                    now,
                    self.owner,
                )
            if retry:
                await conn.execute(
                    "UPDATE outbox AS o SET attempts = o.attempts + 1, next_attempt_at = s.at,"
                    " last_error = s.error, claimed_until = NULL, claimed_by = NULL"
                    " FROM unnest($1::bigint[], $2::timestamptz[], $3::text[])"
                    " AS s(id, at, error) WHERE o.id = s.id AND o.status = 'pending'"
                    " AND o.claimed_by = $4",
                    *_columns(retry, 3),
                    self.owner,
                )
            if not dead:
                return []
            ids, types, errors = _columns(dead, 3)
            killed = await conn.fetch(
                "UPDATE outbox AS o SET status = 'dead', attempts = o.attempts + 1,"
                " last_error = s.error, claimed_until = NULL, claimed_by = NULL"
                " FROM unnest($1::bigint[], $2::text[]) AS s(id, error)"
                " WHERE o.id = s.id AND o.status = 'pending'"
                " AND o.claimed_by = $3 RETURNING o.id",
                ids,
                errors,
                self.owner,
            )
            created = await conn.fetch(
                "INSERT INTO dead_letters (stage, outlet, connector, error_type, error,"
                " outbox_id, payload, attempts, created_at, updated_at)"
                " SELECT 'delivery', r.outlet, r.source_system, s.error_type, s.error, o.id,"
                " o.payload, o.attempts, $4, $4"
                " FROM unnest($1::bigint[], $2::text[], $3::text[]) WITH ORDINALITY"
                " AS s(id, error_type, error, n)"
                " JOIN outbox AS o ON o.id = s.id JOIN records AS r ON r.id = o.record_id"
                " WHERE o.id = ANY($5::bigint[]) ORDER BY s.n RETURNING id",
                ids,
                types,
                errors,
                now,
                [row[0] for row in killed],
            )
            rows = await conn.fetch(
                f"{DEAD_LETTERS} WHERE d.id = ANY($1::bigint[]) ORDER BY d.id",
                [r[0] for r in created],
            )
            return [dead_letter(row, _same) for row in rows]

        return await self._run(settle, transaction=True)


# Every attempt of a settled batch in one statement: one round trip, as the settle's updates.
_INSERT_ATTEMPTS = (
    "INSERT INTO delivery_attempts (outbox_id, sink, record_id, revision, attempt, started_at,"
    " latency_ms, outcome, http_status, error_type, error, response, next_attempt_at)"
    " SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::int[], $5::int[],"
    " $6::timestamptz[], $7::int[], $8::text[], $9::int[], $10::text[], $11::text[],"
    " $12::text[], $13::timestamptz[])"
)


class _PoolTx:
    """A pooled connection in a transaction as a `Tx`: `?` placeholders become `$n`."""

    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        """Every row of a query."""
        rows: list[Row] = await self._conn.fetch(numbered(sql), *args)
        return rows

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        """The first row of a query, if any."""
        row: Row | None = await self._conn.fetchrow(numbered(sql), *args)
        return row

    async def execute(self, sql: str, *args: Any) -> int:
        """Run one statement; how many rows it touched."""
        return _touched(await self._conn.execute(numbered(sql), *args))


def _touched(status: str) -> int:
    """The row count of an asyncpg command status ("UPDATE 3"); 0 if it names none."""
    return int(status.rsplit(" ", 1)[-1]) if status[-1:].isdigit() else 0


async def _keep_session(conn: Conn) -> None:
    """Hand a connection back to the pool as it is: pooled connections never LISTEN, SET or
    take session locks, so asyncpg's default reset would only cost a round trip per query. An
    open transaction is still rolled back (asyncpg does that before calling this), and a broken
    connection never gets here (`PostgresStore._connection` terminates it)."""


def _by_key(row: PlannedRow) -> Key:
    return row.key


def _unavailable(what: str, err: BaseException) -> StoreUnavailable:
    failure = StoreUnavailable(f"{what}: {type(err).__name__}: {err}")
    failure.__cause__ = err
    return failure


async def create_schema(url: str, *, prefix: str = "scratch") -> tuple[str, str]:
    """A fresh empty schema: its name, and `url` with the search_path set to it.

    Tests and benchmarks each get one, so they share a server without seeing each other's rows;
    `drop_schema` removes it with everything in it.
    """
    name = f"{prefix}_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'CREATE SCHEMA "{name}"')
    finally:
        await conn.close()
    joiner = "&" if "?" in url else "?"
    return name, f"{url}{joiner}search_path={name}"


async def drop_schema(url: str, name: str) -> None:
    """Drop a schema made by `create_schema`, with everything in it.

    A process still using the schema (a daemon a test is stopping) may hold locks the drop
    needs in the other order: the server then ends one of the two as a deadlock. The drop is
    tried again until that process is done, for up to about ten seconds.
    """
    conn = await asyncpg.connect(url)
    try:
        for attempt in range(50):
            try:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
                return
            except asyncpg.DeadlockDetectedError:
                if attempt == 49:
                    raise
                await asyncio.sleep(0.2)
    finally:
        await conn.close()
