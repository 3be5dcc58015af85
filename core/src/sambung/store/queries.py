"""The SQL both backends run word for word, and the values their rows become.

Only the SQL that SQLite and PostgreSQL understand alike lives here; each store converts its own
stored times (`Times`: text on SQLite, already datetimes on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from .base import (
    Backfill,
    BackfillState,
    ClaimedRow,
    ConnectionState,
    ConnectionStatus,
    CursorChange,
    CursorState,
    DeadLetter,
    DeadLetterIn,
    DeliveryAttempt,
    DeliveryRow,
    OutboxSettlement,
    StoredRecord,
    kept_answer,
)

# Stored time (or NULL) to an aware datetime (or None).
Times = Callable[[Any], Any]

RECORD_COLUMNS = (
    "id, outlet, source_system, kind, external_id, fingerprint, revision,"
    " source_updated_at, payload, raw_event_id, created_at, updated_at"
)
# Append a WHERE clause (filters on d.*) to read dead letters with the sink of their outbox row.
DEAD_LETTERS = (
    "SELECT d.id, d.stage, d.outlet, d.connector, d.error_type, d.error, d.field,"
    " d.raw_event_id, d.payload, d.status, d.created_at, d.outbox_id, d.attempts, o.sink"
    " FROM dead_letters AS d LEFT JOIN outbox AS o ON o.id = d.outbox_id"
)
CONNECTION_STATES = (
    "SELECT s.outlet, s.connector, s.mode, s.state, s.last_run_at, s.last_success_at,"
    " s.last_error, s.last_error_at, s.records_fetched, s.refused_credentials, c.value"
    " FROM connection_states AS s LEFT JOIN cursors AS c"
    " ON c.outlet = s.outlet AND c.connector = s.connector"
    " ORDER BY s.outlet, s.connector, s.mode"
)
RECORD_ACTIVITY = (
    "SELECT outlet, source_system, COUNT(*), MAX(updated_at) FROM records"
    " GROUP BY outlet, source_system"
)
DEAD_LETTER_ACTIVITY = (
    "SELECT outlet, connector, COUNT(CASE WHEN status = 'open' THEN 1 END), MAX(created_at),"
    " (SELECT e.error FROM dead_letters AS e WHERE e.outlet = d.outlet"
    "  AND e.connector = d.connector AND e.stage != 'delivery' ORDER BY e.id DESC LIMIT 1)"
    " FROM dead_letters AS d WHERE stage != 'delivery' GROUP BY outlet, connector"
)
# `outbox_stats`, in two reads that each stay inside an index (0014): rows per sink and status,
# then the oldest pending row and the retrying ones per sink, from pending rows only.
OUTBOX_COUNTS = "SELECT sink, status, COUNT(*) FROM outbox GROUP BY sink, status"
PENDING_STATS = (
    "SELECT sink, MIN(created_at), COUNT(CASE WHEN attempts > 0 THEN 1 END) FROM outbox"
    " WHERE status = 'pending' GROUP BY sink"
)
# After `FROM outbox AS o ... WHERE`: the due rows of one sink, oldest first (binds sink, now,
# now, limit). Pending and due, under no live claim (an expired one is free whoever made it),
# and no older revision of the record still pending for the sink: versions go out in order.
DUE_OUTBOX = (
    "o.sink = ? AND o.status = 'pending' AND o.next_attempt_at <= ?"
    " AND (o.claimed_until IS NULL OR o.claimed_until <= ?)"
    " AND NOT EXISTS (SELECT 1 FROM outbox AS p WHERE p.sink = o.sink"
    "  AND p.record_id = o.record_id AND p.status = 'pending'"
    "  AND p.revision < o.revision)"
    " ORDER BY o.next_attempt_at, o.id LIMIT ?"
)
# One ingest request's dead letter (`dead_letter_values`); a repeat of one is not kept twice.
INSERT_DEAD_LETTER = (
    "INSERT INTO dead_letters (stage, outlet, connector, error_type, error, field,"
    " raw_event_id, payload, created_at, updated_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id"
)
CURSOR_COLUMNS = "outlet, connector, value, updated_at, moved_by, generation"
CURSOR_CHANGE_COLUMNS = "id, outlet, connector, before, after, actor, reason, at"
BACKFILL_COLUMNS = (
    "id, outlet, connector, since, until, state, position, pages, records_new,"
    " records_changed, records_unchanged, error, requested_by, created_at, started_at,"
    " finished_at"
)
COUNTS = " UNION ALL ".join(
    f"SELECT '{table}', COUNT(*) FROM {table}"
    for table in ("raw_events", "records", "outbox", "dead_letters", "cursors", "delivery_attempts")
)
ATTEMPT_COLUMNS = (
    "a.id, a.outbox_id, a.sink, a.record_id, a.revision, a.attempt, a.started_at, a.latency_ms,"
    " a.outcome, a.http_status, a.error_type, a.error, a.response, a.next_attempt_at"
)
# Append a WHERE clause (filters on o.* and r.*): outbox rows with their record's identity and
# their latest kept attempt (all NULL when none is kept).
DELIVERIES = (
    "SELECT o.id, o.sink, r.outlet, r.source_system, r.kind, r.external_id, o.record_id,"
    " o.revision, o.status, o.attempts, o.next_attempt_at, o.created_at, o.delivered_at,"
    f" o.last_error, {ATTEMPT_COLUMNS}"
    " FROM outbox AS o JOIN records AS r ON r.id = o.record_id"
    " LEFT JOIN delivery_attempts AS a ON a.id ="
    " (SELECT MAX(l.id) FROM delivery_attempts AS l WHERE l.outbox_id = o.id)"
)
# One attempt row's values, in ATTEMPT_COLUMNS order after the id.
INSERT_ATTEMPT = (
    "INSERT INTO delivery_attempts (outbox_id, sink, record_id, revision, attempt, started_at,"
    " latency_ms, outcome, http_status, error_type, error, response, next_attempt_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def filters(mark: Callable[[int], str], **columns: Any) -> tuple[str, list[Any]]:
    """A WHERE clause (or nothing) matching every given column; `mark(n)` is the n-th
    placeholder in the backend's style (`?` or `$n`)."""
    given = [(name, value) for name, value in columns.items() if value is not None]
    if not given:
        return "", []
    clause = " AND ".join(f"{name} = {mark(n)}" for n, (name, _) in enumerate(given, 1))
    return " WHERE " + clause, [value for _, value in given]


def dead_letter_values(letter: DeadLetterIn, raw_event_id: int | None, now: Any) -> list[Any]:
    """The values INSERT_DEAD_LETTER binds for `letter`, stamped `now` (as stored)."""
    return [
        letter.stage,
        letter.outlet,
        letter.connector,
        letter.error_type,
        letter.error,
        letter.field,
        raw_event_id,
        letter.payload,
        now,
        now,
    ]


def stored_record(r: Sequence[Any], time: Times) -> StoredRecord:
    """A row of RECORD_COLUMNS."""
    return StoredRecord(
        id=r[0],
        outlet=r[1],
        source_system=r[2],
        kind=r[3],
        external_id=r[4],
        fingerprint=r[5],
        revision=r[6],
        source_updated_at=time(r[7]),
        payload=r[8],
        raw_event_id=r[9],
        created_at=time(r[10]),
        updated_at=time(r[11]),
    )


def claimed_row(r: Sequence[Any], time: Times) -> ClaimedRow:
    """A claimed outbox row: (id, sink, record_id, revision, idempotency_key, payload,
    attempts, created_at, outlet, source_system, kind)."""
    return ClaimedRow(
        id=r[0],
        sink=r[1],
        record_id=r[2],
        revision=r[3],
        idempotency_key=r[4],
        payload=r[5],
        attempts=r[6],
        created_at=time(r[7]),
        outlet=r[8],
        source_system=r[9],
        kind=r[10],
    )


def dead_letter(r: Sequence[Any], time: Times) -> DeadLetter:
    """A row of DEAD_LETTERS."""
    return DeadLetter(
        id=r[0],
        stage=r[1],
        outlet=r[2],
        connector=r[3],
        error_type=r[4],
        error=r[5],
        field=r[6],
        raw_event_id=r[7],
        payload=r[8],
        status=r[9],
        created_at=time(r[10]),
        outbox_id=r[11],
        attempts=r[12],
        sink=r[13],
    )


def delivery_attempt(r: Sequence[Any], time: Times) -> DeliveryAttempt:
    """A row of ATTEMPT_COLUMNS."""
    return DeliveryAttempt(
        id=r[0],
        outbox_id=r[1],
        sink=r[2],
        record_id=r[3],
        revision=r[4],
        attempt=r[5],
        started_at=time(r[6]),
        latency_ms=r[7],
        outcome=r[8],
        http_status=r[9],
        error_type=r[10],
        error=r[11],
        response=r[12],
        next_attempt_at=time(r[13]),
    )


def delivery_row(r: Sequence[Any], time: Times) -> DeliveryRow:
    """A row of DELIVERIES."""
    return DeliveryRow(
        id=r[0],
        sink=r[1],
        outlet=r[2],
        source_system=r[3],
        kind=r[4],
        external_id=r[5],
        record_id=r[6],
        revision=r[7],
        status=r[8],
        attempts=r[9],
        next_attempt_at=time(r[10]),
        created_at=time(r[11]),
        delivered_at=time(r[12]),
        last_error=r[13],
        latest=None if r[14] is None else delivery_attempt(r[14:], time),
    )


class SettledRows(NamedTuple):
    """A batch of settlements split for the store's statements (`split_settlements`)."""

    delivered: list[int]  # outbox ids
    retry: list[tuple[int, Any, str | None]]  # (id, encoded due time, error)
    dead: list[OutboxSettlement]
    attempts: list[tuple[Any, ...]]  # the values INSERT_ATTEMPT binds, one per attempt note


def split_settlements(
    settlements: Sequence[OutboxSettlement], now: Any, time: Callable[[Any], Any]
) -> SettledRows:
    """Delivered, retried and dead rows and every attempt note's values, in one pass; `time`
    encodes a datetime as the backend stores it.

    The drain's hot path: one loop and plain tuples, since a batch is thousands of rows and
    every Python step here is paid per delivery."""
    split = SettledRows([], [], [], [])
    delivered, retry, dead, attempts = split
    for s in settlements:
        status = s.status
        due = None
        if status == "delivered":
            delivered.append(s.id)
            outcome = "delivered"
        elif status == "pending":
            due = time(s.next_attempt_at or now)
            retry.append((s.id, due, s.error))
            outcome = "retry"
        else:
            dead.append(s)
            outcome = "dead"
        note = s.attempt
        if note is None:
            continue
        sink, record_id, revision, attempt, started_at, latency, http, error_type, answer = note
        attempts.append(
            (
                s.id,
                sink,
                record_id,
                revision,
                attempt,
                time(started_at),
                latency,
                outcome,
                http,
                error_type or s.error_type,
                s.error,
                None if answer is None else kept_answer(answer),
                due,
            )
        )
    return split


def connection_state(r: Sequence[Any], time: Times) -> ConnectionState:
    """A row of CONNECTION_STATES."""
    return ConnectionState(
        outlet=r[0],
        connector=r[1],
        mode=r[2],
        state=ConnectionStatus(r[3]),
        last_run_at=time(r[4]),
        last_success_at=time(r[5]),
        last_error=r[6],
        last_error_at=time(r[7]),
        records_fetched=r[8],
        refused_credentials=r[9],
        cursor=r[10],
    )


def connection_activity(
    records: Sequence[Sequence[Any]], dead_letters: Sequence[Sequence[Any]], time: Times
) -> dict[tuple[str, str], dict[str, Any]]:
    """Rows of RECORD_ACTIVITY and DEAD_LETTER_ACTIVITY, per (outlet, source_system)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for outlet, source, count, last in records:
        found[(outlet, source)] = {"records": count, "last_success_at": time(last)}
    for outlet, source, count, last, error in dead_letters:
        entry = found.setdefault((outlet, source), {})
        entry.update(open_dead_letters=count, last_error_at=time(last), last_error=error)
    return found


def cursor_state(r: Sequence[Any], time: Times) -> CursorState:
    """A row of CURSOR_COLUMNS."""
    return CursorState(r[0], r[1], r[2], time(r[3]), r[4], int(r[5]))


def cursor_change(r: Sequence[Any], time: Times) -> CursorChange:
    """A row of CURSOR_CHANGE_COLUMNS."""
    return CursorChange(r[0], r[1], r[2], r[3], r[4], r[5], r[6], time(r[7]))


def backfill(r: Sequence[Any], time: Times) -> Backfill:
    """A row of BACKFILL_COLUMNS."""
    return Backfill(
        id=r[0],
        outlet=r[1],
        connector=r[2],
        since=time(r[3]),
        until=time(r[4]),
        state=BackfillState(r[5]),
        position=r[6] or None,
        pages=int(r[7]),
        records_new=int(r[8]),
        records_changed=int(r[9]),
        records_unchanged=int(r[10]),
        error=r[11],
        requested_by=r[12],
        created_at=time(r[13]),
        started_at=time(r[14]),
        finished_at=time(r[15]),
    )
