"""What one group of ingest requests does to the store, decided in Python for both backends.

Both stores read the raw events and records a group touches, let `plan_group` decide every
outcome (new, changed, unchanged, stale; which outbox rows; which raw events are repeats), and
then write the plan with one batched statement per table. Keeping the decision here, once, is
what stops the SQLite and PostgreSQL semantics from drifting apart.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sambung.errors import LeaseLost
from sambung.models import Record, SerializedRecord

from .base import CursorUpdate, IngestRequest, IngestResult, LeaseHold, Outcome, RecordResult

Key = tuple[str, str, str, str]
RawKey = tuple[str, str, str]


def idempotency_key(
    sink: str, record: Record | SerializedRecord, revision: int, fingerprint: str
) -> str:
    """The delivery id a receiver deduplicates on: stable across retries, new for new content."""
    identity = "|".join((sink, *record.key, str(revision), fingerprint))
    return "msg_" + hashlib.sha256(identity.encode()).hexdigest()[:32]


class PlannedRow:
    """What the writer knows of one record while it applies a group."""

    __slots__ = (
        "business_date",
        "fingerprint",
        "id",
        "key",
        "new",
        "payload",
        "raw_event_id",
        "revision",
        "version",
        "webhook_at",
    )

    def __init__(
        self,
        id: int,
        fingerprint: str,
        revision: int,
        version: Any,
        new: bool,
        payload: str | None = None,
        raw_event_id: int | None = None,
        key: Key = ("", "", "", ""),
        business_date: str | None = None,
        webhook_at: Any = None,
    ) -> None:
        self.id, self.fingerprint, self.revision, self.version = id, fingerprint, revision, version
        self.new = new
        self.payload = payload
        self.raw_event_id = raw_event_id
        # The record's identity; set when this group writes the record.
        self.key = key
        # The local day a transaction or summary counts for (ISO text); what summaries group by.
        self.business_date = business_date
        # When a webhook first delivered the record (stored form), None while none has: what
        # the webhook gap report counts.
        self.webhook_at = webhook_at


@dataclass
class GroupPlan:
    """The rows one group writes, and each request's result (dead letters are added later)."""

    raw_rows: list[tuple[Any, ...]] = field(default_factory=list)
    touched: dict[Key, PlannedRow] = field(default_factory=dict)
    outbox_rows: list[tuple[Any, ...]] = field(default_factory=list)
    results: list[IngestResult] = field(default_factory=list)


def plan_group(
    requests: Sequence[IngestRequest],
    raw_ids: dict[RawKey, int],
    stored: dict[Key, PlannedRow],
    *,
    now: Any,
    stamp: Callable[[datetime], Any],
    new_raw_id: Callable[[], int],
    new_record_id: Callable[[], int],
) -> GroupPlan:
    """Decide a group: requests apply in order, as if each were committed after the one before.

    `raw_ids` and `stored` hold what the database has for the keys of the group and are updated
    in place; `stamp` turns a datetime into the backend's stored form (versions must compare in
    it as the datetimes do); `now` is the stamp of this commit; `new_*_id` hand out fresh ids.
    Raw rows are (id, outlet, source_system, channel, dedup_key, event_type, content_type,
    body, received_at); outbox rows are (sink, record_id, revision, idempotency_key, payload,
    now, now).
    """
    plan = GroupPlan()
    raw_rows, touched, outbox_rows, results = (
        plan.raw_rows,
        plan.touched,
        plan.outbox_rows,
        plan.results,
    )
    # Locals: this loop runs once per record, thousands of times per group on a CSV import.
    # tuple.__new__ makes a RecordResult in C; its class call runs a Python-level __new__.
    result = tuple.__new__
    inserted, updated, unchanged, stale = (
        Outcome.INSERTED,
        Outcome.UPDATED,
        Outcome.UNCHANGED,
        Outcome.STALE,
    )

    for request in requests:
        raw_event_id, raw_duplicate = None, False
        if (raw := request.raw) is not None:
            raw_key = (raw.outlet, raw.source_system, raw.dedup_key)
            raw_event_id = raw_ids.get(raw_key)
            raw_duplicate = raw_event_id is not None
            if raw_event_id is None:
                raw_event_id = raw_ids[raw_key] = new_raw_id()
                raw_rows.append(
                    (
                        raw_event_id,
                        *raw_key[:2],
                        raw.channel,
                        raw.dedup_key,
                        raw.event_type,
                        raw.content_type,
                        raw.body,
                        stamp(raw.received_at),
                    )
                )
        outcomes: list[RecordResult] = []
        queued = 0
        routes = request.routes or [()] * len(request.records)
        webhook_at = now if raw is not None and raw.channel == "webhook" else None
        for record, sinks in zip(request.records, routes, strict=True):
            key, payload, fingerprint, updated_at, day = record.serialized()
            row = stored.get(key)
            version = stamp(updated_at) if updated_at else None
            if row is not None and webhook_at is not None and row.webhook_at is None:
                # A webhook brings what a poll stored first: late, but no loss. Remembered
                # whatever else this delivery does to the record (even nothing).
                row.webhook_at = webhook_at
                row.key = key
                touched[key] = row
            if row is None:  # most rows of an import: made whole in one call
                row = stored[key] = touched[key] = PlannedRow(
                    new_record_id(),
                    fingerprint,
                    1,
                    version,
                    True,
                    payload,
                    raw_event_id,
                    key,
                    day,
                    webhook_at,
                )
                outcome = inserted
            elif version is not None and row.version is not None and version < row.version:
                outcomes.append(result(RecordResult, (row.id, row.revision, stale)))
                continue
            elif fingerprint == row.fingerprint:
                if version is not None and version != row.version:
                    # Same content, newer version: remember it so an older one cannot win.
                    row.version = version
                    row.key = key
                    touched[key] = row
                outcomes.append(result(RecordResult, (row.id, row.revision, unchanged)))
                continue
            else:
                row.fingerprint, row.version, row.payload = fingerprint, version, payload
                row.revision += 1
                row.raw_event_id = raw_event_id or row.raw_event_id
                row.key = key
                row.business_date = day
                touched[key] = row
                outcome = updated
            outcomes.append(result(RecordResult, (row.id, row.revision, outcome)))
            for sink in sinks:
                message_id = idempotency_key(sink, record, row.revision, fingerprint)
                outbox_rows.append((sink, row.id, row.revision, message_id, payload, now, now))
            queued += len(sinks)
        results.append(
            IngestResult(
                raw_event_id=raw_event_id,
                raw_duplicate=raw_duplicate,
                records=outcomes,
                outbox_rows=queued,
            )
        )
    return plan


def furthest_cursors(requests: Sequence[IngestRequest]) -> list[CursorUpdate]:
    """Per (outlet, connector), the furthest cursor a group moves it to: a cursor only moves
    forward (see `CursorUpdate`), so of several in one group the furthest of the newest
    generation wins (an older generation's would be refused by the store anyway)."""
    cursors: dict[tuple[str, str], CursorUpdate] = {}
    for request in requests:
        if (c := request.cursor) is not None:
            key = (c.outlet, c.connector)
            best = cursors.get(key)
            if best is None or (c.generation, c.value) > (best.generation, best.value):
                cursors[key] = c
    return list(cursors.values())


# Moves a backfill task on by one committed page (binds position, pages' outcomes, the time
# and the id); its position only moves forward, like a cursor.
BACKFILL_PROGRESS = (
    "UPDATE backfills SET position = CASE WHEN ? > COALESCE(position, '') THEN ?"
    " ELSE position END, pages = pages + 1, records_new = records_new + ?,"
    " records_changed = records_changed + ?, records_unchanged = records_unchanged + ?,"
    " updated_at = ? WHERE id = ?"
)


def backfill_progress(
    requests: Sequence[IngestRequest], results: Sequence[IngestResult], now: Any
) -> list[tuple[Any, ...]]:
    """The BACKFILL_PROGRESS values of each backfill page in a group, from what its records'
    upserts did (new, changed, or unchanged: the same content, or older, queues nothing)."""
    rows = []
    for request, result in zip(requests, results, strict=True):
        if (progress := request.backfill) is None:
            continue
        new = sum(1 for r in result.records if r.outcome is Outcome.INSERTED)
        changed = sum(1 for r in result.records if r.outcome is Outcome.UPDATED)
        unchanged = len(result.records) - new - changed
        # A page with no cursor of its own keeps the position ('' is before any cursor).
        position = progress.position or ""
        rows.append((position, position, new, changed, unchanged, now, progress.backfill_id))
    return rows


def leases_of(requests: Sequence[IngestRequest]) -> list[LeaseHold]:
    """The distinct leases the requests of a group are fenced by."""
    return list(dict.fromkeys(r.lease for r in requests if r.lease is not None))


def fence_group(
    requests: Sequence[IngestRequest], held: Collection[LeaseHold]
) -> tuple[list[IngestRequest], Callable[[Sequence[IngestResult]], list[IngestResult | Exception]]]:
    """Split a group by its leases: the requests to apply, and how to put their results back
    in order beside a `LeaseLost` for each request whose lease is not in `held`."""
    lost = {i for i, r in enumerate(requests) if r.lease is not None and r.lease not in held}
    kept = [r for i, r in enumerate(requests) if i not in lost]

    def merge(results: Sequence[IngestResult]) -> list[IngestResult | Exception]:
        applied = iter(results)
        merged: list[IngestResult | Exception] = []
        for i, request in enumerate(requests):
            if i in lost:
                assert request.lease is not None
                merged.append(
                    LeaseLost(
                        f"lease {request.lease.name} is no longer held by {request.lease.owner};"
                        " nothing of this write was committed"
                    )
                )
            else:
                merged.append(next(applied))
        return merged

    return kept, merge
