"""The store's interface and the plain values that cross it."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal, NamedTuple, Protocol

from pydantic_core import PydanticSerializationError

from sambung.clock import Clock
from sambung.errors import InvalidRecord
from sambung.models import Record, SerializedRecord
from sambung.redaction import redact, redact_optional, shorten

from .controls import ControlStore
from .monitoring import MonitoringStore

Channel = Literal["webhook", "poll", "file", "replay"]
Stage = Literal["ingest", "row", "delivery"]


def _mask(value: object, name: str) -> None:
    """Redact the error text `value.name` of a frozen dataclass: such text often quotes a
    vendor's answer, and every one stored or shown passes through these classes."""
    object.__setattr__(value, name, redact_optional(getattr(value, name)))


def _kept(value: object, name: str) -> None:
    """`_mask`, and spell out what no store keeps (a NUL, a lone surrogate): the text quotes a
    receiver's answer, which must never fail the transaction that records it."""
    text = getattr(value, name)
    if text is not None:
        object.__setattr__(value, name, printable(redact(text)))


@dataclass(frozen=True)
class RawEvent:
    """A body exactly as a vendor sent it, kept for audit and for replay after a fix."""

    outlet: str
    source_system: str
    channel: Channel
    dedup_key: str
    body: bytes
    received_at: datetime
    event_type: str | None = None
    content_type: str | None = None


@dataclass(frozen=True)
class DeadLetterIn:
    """A failure to keep: what stage failed, why, and the payload to replay (raw event or text)."""

    stage: Stage
    outlet: str
    connector: str
    error_type: str
    error: str
    field: str | None = None
    payload: str | None = None

    def __post_init__(self) -> None:
        _mask(self, "error")


@dataclass(frozen=True)
class CursorUpdate:
    """A poll cursor to move in the same transaction as the records it covers.

    `value` is UTC ISO-8601 text (`polling.to_cursor`), so text order is time order, and the
    store never moves a cursor back: a replica that lost its lease while a page was queued can
    still commit that page's records (they are idempotent), but not rewind the new owner.
    """

    outlet: str
    connector: str
    value: str
    # The cursor's generation when the run read it (`CursorState.generation`): the update
    # moves the cursor only while that is still the stored one, so a page in flight while an
    # operator set or reset the cursor commits its records but leaves the operator's cursor.
    generation: int = 0
    # Which poll run moves it, shown by `sambung cursor show`.
    moved_by: str | None = None


@dataclass(frozen=True)
class CursorState:
    """A connection's committed cursor (None once reset), when and by whom it last moved."""

    outlet: str
    connector: str
    value: str | None
    moved_at: datetime
    moved_by: str | None
    generation: int


@dataclass(frozen=True)
class CursorChange:
    """One operator change of a cursor: who, when, from what to what, and why."""

    id: int
    outlet: str
    connector: str
    before: str | None
    after: str | None
    actor: str
    reason: str | None
    at: datetime


class BackfillState(StrEnum):
    """Where a backfill task is."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_BACKFILL_STATES = (BackfillState.QUEUED, BackfillState.RUNNING)


@dataclass(frozen=True)
class Backfill:
    """A window re-polled on request, apart from the live cursor, and how far it got."""

    id: int
    outlet: str
    connector: str
    since: datetime
    until: datetime
    state: BackfillState
    # The task's own cursor inside the window (UTC ISO text, as `CursorUpdate.value`).
    position: str | None
    pages: int
    records_new: int
    records_changed: int
    records_unchanged: int
    error: str | None
    requested_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    def __post_init__(self) -> None:
        _mask(self, "error")

    @property
    def active(self) -> bool:
        """Whether the task still has work to do (queued or running)."""
        return self.state in ACTIVE_BACKFILL_STATES


@dataclass(frozen=True)
class BackfillProgress:
    """A backfill's progress, committed in the same transaction as the page it follows: its
    page count and record counts grow by that page's outcomes, its position moves to
    `position` (unless None)."""

    backfill_id: int
    position: str | None


@dataclass(frozen=True)
class LeaseHold:
    """A lease a write is fenced by: the write commits only while `owner` holds `name`."""

    name: str
    owner: str


@dataclass(frozen=True)
class IngestRequest:
    """One atomic write: everything in it is committed together or not at all."""

    raw: RawEvent | None = None
    # Records, or records serialised already where they were mapped (a CSV import's worker).
    records: Sequence[Record | SerializedRecord] = ()
    # Per record (same order): the sinks that must receive it, one outbox row each on change.
    routes: Sequence[Sequence[str]] = ()
    dead_letter: DeadLetterIn | None = None
    cursor: CursorUpdate | None = None
    # Checked in the write's own transaction: unless this lease is still held (owner and not
    # expired), nothing is committed and the request fails with `LeaseLost` (a poll page of a
    # replica that was frozen while its lease passed on).
    lease: LeaseHold | None = None
    # A backfill page: the task's progress goes in the same transaction as the records.
    backfill: BackfillProgress | None = None


def storable(request: IngestRequest) -> IngestRequest:
    """`request` with its records serialised, once every text in it is one the store can keep.

    Raises `InvalidRecord` for text no database column can hold (a lone surrogate such as
    `"\\ud800"`, which is no UTF-8, or a NUL, which PostgreSQL refuses): the sender's fault, to
    be answered as bad input, never taken for the store being unavailable.
    """
    raw, letter, cursor = request.raw, request.dead_letter, request.cursor
    if raw is not None:
        for name in ("outlet", "source_system", "dedup_key", "event_type", "content_type"):
            _storable_text(getattr(raw, name), name)
    if letter is not None:
        # Why and where are our own words, though they may quote the sender (a CSV header, a
        # cell): spelled storable here, for every path that dead-letters, rather than refused.
        letter = replace(
            letter,
            error=printable(letter.error),
            field=None if letter.field is None else printable(letter.field),
        )
        for name in ("outlet", "connector", "error_type", "payload"):
            _storable_text(getattr(letter, name), f"dead_letter.{name}")
    if cursor is not None:
        _storable_text(cursor.value, "cursor")
    records: list[Record | SerializedRecord] = []
    for record in request.records:
        for part in record.key:
            _storable_text(part, "external_id")
        try:
            records.append(record.serialized())
        except (PydanticSerializationError, UnicodeEncodeError) as err:
            raise InvalidRecord(f"text the store cannot keep: {err}") from err
    return replace(request, records=records, dead_letter=letter)


def printable(text: str) -> str:
    """`text` with what no store or log can hold (lone surrogates, NUL) spelled as escapes."""
    if text.isascii() and "\x00" not in text:
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def _storable_text(value: str | None, name: str) -> None:
    if value is None or (value.isascii() and "\x00" not in value):
        return
    if "\x00" in value:
        raise InvalidRecord("text holds a NUL character", field=name)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise InvalidRecord(f"text is not valid Unicode ({err.reason})", field=name) from None


class Outcome(StrEnum):
    """What an upsert did to a record."""

    INSERTED = "inserted"
    UPDATED = "updated"
    UNCHANGED = "unchanged"  # same fingerprint: nothing new to deliver
    STALE = "stale"  # an older version than the one stored: ignored


class RecordResult(NamedTuple):
    """The stored id and revision of one upserted record and what happened to it."""

    # A NamedTuple, not a frozen dataclass: one is made per record, a CSV import makes millions.
    id: int
    revision: int
    outcome: Outcome


@dataclass(frozen=True)
class IngestResult:
    """What one `ingest` committed."""

    raw_event_id: int | None = None
    raw_duplicate: bool = False
    records: list[RecordResult] = field(default_factory=list)
    dead_letter_id: int | None = None
    outbox_rows: int = 0


@dataclass(frozen=True)
class StoredRecord:
    """A record as stored: its unified JSON plus bookkeeping."""

    id: int
    outlet: str
    source_system: str
    kind: str
    external_id: str
    fingerprint: str
    revision: int
    source_updated_at: datetime | None
    payload: str
    raw_event_id: int | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class OutboxRow:
    """One pending or finished delivery of one record revision to one sink."""

    id: int
    sink: str
    record_id: int
    revision: int
    idempotency_key: str
    payload: str
    status: str
    attempts: int
    next_attempt_at: datetime
    created_at: datetime


@dataclass(frozen=True)
class DeadLetter:
    """A committed dead-letter entry."""

    id: int
    stage: str
    outlet: str
    connector: str
    error_type: str
    error: str
    field: str | None
    raw_event_id: int | None
    payload: str | None
    status: str
    created_at: datetime
    outbox_id: int | None = None
    attempts: int = 0
    # The sink a delivery dead letter was bound for (None for other stages).
    sink: str | None = None

    def __post_init__(self) -> None:
        _mask(self, "error")


@dataclass(frozen=True)
class ClaimedRow:
    """An outbox row claimed for delivery, with the identity of the record it carries."""

    id: int
    sink: str
    record_id: int
    revision: int
    idempotency_key: str
    payload: str
    attempts: int
    created_at: datetime
    outlet: str
    source_system: str
    kind: str


OutboxStatus = Literal["delivered", "pending", "dead"]
AttemptOutcome = Literal["delivered", "retry", "dead"]
# How much of a receiver's answer an attempt keeps: enough to read why, not a copy of the body.
MAX_ATTEMPT_RESPONSE = 500


class AttemptNote(NamedTuple):
    """How one delivery attempt went, kept (`delivery_attempts`) with the settlement it led to.

    A plain tuple, not a dataclass: the dispatcher makes one per delivery on its hot path. The
    store cuts and masks `response` as it writes it (`kept_answer`), whoever made the note.
    """

    sink: str
    record_id: int
    revision: int
    attempt: int  # 1 for the first try of the row (since its last replay)
    started_at: datetime
    latency_ms: int | None = None
    http_status: int | None = None
    error_type: str | None = None
    response: str | None = None  # the receiver's answer


def kept_answer(response: str | None) -> str | None:
    """A receiver's answer as an attempt keeps it: storable, masked and cut."""
    if response is None:
        return None
    return shorten(printable(response), MAX_ATTEMPT_RESPONSE)


@dataclass(frozen=True)
class OutboxSettlement:
    """What one delivery attempt decided for one claimed row: delivered, retry later, or dead.

    With an `attempt` note, the store keeps that attempt in `delivery_attempts`, in the same
    transaction; without one (an older caller) the row is settled and no attempt is kept.
    """

    id: int
    status: OutboxStatus
    error: str | None = None
    error_type: str | None = None
    next_attempt_at: datetime | None = None
    attempt: AttemptNote | None = None

    def __post_init__(self) -> None:
        _kept(self, "error")

    @property
    def outcome(self) -> AttemptOutcome:
        """The attempt's outcome as `delivery_attempts` names it."""
        return "retry" if self.status == "pending" else self.status


@dataclass(frozen=True)
class DeliveryAttempt:
    """One kept delivery attempt of one outbox row."""

    id: int
    outbox_id: int
    sink: str
    record_id: int
    revision: int
    attempt: int
    started_at: datetime
    latency_ms: int | None
    outcome: str
    http_status: int | None
    error_type: str | None
    error: str | None
    response: str | None
    next_attempt_at: datetime | None

    def __post_init__(self) -> None:
        # Masked when written too; again here for a secret configured since.
        _mask(self, "error")
        _mask(self, "response")


@dataclass(frozen=True)
class DeliveryRow:
    """An outbox row as the delivery tools show it: its record, its state, its latest attempt."""

    id: int
    sink: str
    outlet: str
    source_system: str
    kind: str
    external_id: str
    record_id: int
    revision: int
    status: str
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    delivered_at: datetime | None
    last_error: str | None
    latest: DeliveryAttempt | None = None

    def __post_init__(self) -> None:
        _mask(self, "last_error")


@dataclass(frozen=True)
class DeliveryQuery:
    """Which outbox rows to list, newest first: every given field must match."""

    sink: str | None = None
    status: str | None = None
    outlet: str | None = None
    limit: int = 100


@dataclass(frozen=True)
class SinkStats:
    """Outbox counts of one sink, for status and metrics."""

    sink: str
    pending: int
    oldest_pending_at: datetime | None
    retrying: int
    dead: int
    delivered: int


@dataclass(frozen=True)
class DeadLetterQuery:
    """Which dead letters to list: every given field must match."""

    stage: str | None = None
    outlet: str | None = None
    connector: str | None = None
    since: datetime | None = None
    status: str | None = "open"
    limit: int = 100
    # The sink a delivery entry was bound for, and the entry's error class.
    sink: str | None = None
    error_type: str | None = None


@dataclass(frozen=True)
class Lease:
    """Who holds a named lease (a poll loop, an inbox, a replica's heartbeat) and until when."""

    name: str
    owner: str
    expires_at: datetime
    acquired_at: datetime
    renewed_at: datetime


class StoreLifecycle(Protocol):
    """Opening, migrating, checking and closing a store."""

    # Every time the store writes (created_at, updated_at, due times) comes from this clock,
    # the daemon's, so a test that moves its clock moves the store's with it.
    clock: Clock

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and apply pending migrations."""

    @abc.abstractmethod
    async def migrate(self) -> list[str]:
        """Apply pending migrations, and nothing else; the names of those applied, in order.

        Raises `ConfigError` if the database is at a version newer than this sambung knows.
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Finish every accepted write, then release the database."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise `StoreUnavailable` unless the store answers a query."""


class IngestStore(Protocol):
    """Atomic ingest, and reading back what it committed: records, raw events, cursors."""

    @abc.abstractmethod
    async def ingest(self, request: IngestRequest) -> IngestResult:
        """Commit a raw event, records (upserted), outbox rows, a dead letter and a cursor at once.

        Records are upserted on (outlet, source_system, kind, external_id). A record whose
        fingerprint is unchanged, or whose `source_updated_at` is older than the stored one, is
        left alone and gets no outbox row. Returns only after the transaction is durable; raises
        `StoreUnavailable` if it could not be committed.
        """

    @abc.abstractmethod
    async def get_record(
        self, outlet: str, source_system: str, kind: str, external_id: str
    ) -> StoredRecord | None:
        """The stored record with that identity, if any."""

    @abc.abstractmethod
    async def list_records(
        self,
        *,
        outlet: str | None = None,
        source_system: str | None = None,
        kind: str | None = None,
        limit: int = 100,
    ) -> list[StoredRecord]:
        """The most recently changed records, newest first, optionally filtered."""

    @abc.abstractmethod
    async def get_raw_event(self, raw_event_id: int) -> RawEvent | None:
        """A stored raw event with its verbatim body."""

    @abc.abstractmethod
    async def get_cursor(self, outlet: str, connector: str) -> str | None:
        """The committed poll cursor of one connection."""

    @abc.abstractmethod
    async def counts(self) -> dict[str, int]:
        """Row counts per table, for status and tests."""

    @abc.abstractmethod
    async def records_of_day(
        self, outlet: str, kind: str, business_date: date
    ) -> list[StoredRecord]:
        """Every stored record of `kind` at `outlet` whose `business_date` is that day, by id.

        The business date is the one in the record's payload (the outlet's local day), kept
        in its own indexed column when the record is written.
        """

    @abc.abstractmethod
    async def changed_business_dates(
        self, outlet: str, kind: str | tuple[str, ...], *, since: datetime
    ) -> dict[date, datetime]:
        """The business dates of `kind` records (or of any of several kinds) at `outlet`
        written (inserted or changed in content) at or after `since`, each with the newest
        such write time.

        Write times come from the store's own clock at commit and never decrease from one
        commit to the next, so a caller that passes the newest time it was given as its next
        `since` misses nothing (it may see the same date again, which it must take in stride).
        """


class OutboxStore(Protocol):
    """The outbox: what the dispatcher claims, renews, releases and settles."""

    @abc.abstractmethod
    async def list_outbox(self, *, sink: str | None = None, limit: int = 1000) -> list[OutboxRow]:
        """Outbox rows in the order they were written."""

    @abc.abstractmethod
    async def claim_outbox(
        self, sink: str, *, now: datetime, limit: int, lease_seconds: float
    ) -> list[ClaimedRow]:
        """Claim up to `limit` due pending rows of `sink` for `lease_seconds`, oldest first.

        A row is due when its `next_attempt_at` has passed, no live claim holds it (one whose
        expiry has not passed: an expired claim is free whoever made it), and no older revision
        of the same record is still pending for the sink (versions go out in order). The claims
        name this store's owner, who must renew them (`renew_claims`) while delivering.
        """

    @abc.abstractmethod
    async def renew_claims(
        self, ids: Sequence[int], *, now: datetime, lease_seconds: float
    ) -> set[int]:
        """Move the expiry of this owner's claims on `ids` to `now + lease_seconds`; the ids
        still claimed by this owner (the others passed on, or were settled, and must not be
        sent)."""

    @abc.abstractmethod
    async def release_claims(self, sink: str | None = None) -> int:
        """Drop this owner's claims (of one sink): after a crash of its loop, or at start-up
        and shutdown. Never another live owner's: those expire unless renewed. SQLite, which
        one process uses at a time, drops every claim."""

    @abc.abstractmethod
    async def settle_outbox(
        self, settlements: Sequence[OutboxSettlement], *, now: datetime
    ) -> list[DeadLetter]:
        """Record attempt outcomes at once; returns the delivery dead letters this created.

        Fenced: only rows still pending and claimed by this owner are settled, in the same
        transaction, so a claim that passed on (expired, taken by another) is left to its new
        holder whatever this owner's attempt did.
        """

    @abc.abstractmethod
    async def outbox_stats(self) -> dict[str, SinkStats]:
        """Counts per sink of pending, retrying, dead and delivered rows."""

    @abc.abstractmethod
    async def prune_outbox(self, *, before: datetime, limit: int = 5000) -> int:
        """Delete up to `limit` rows delivered (or superseded) before `before`; returns how many."""


class DeliveryAttemptStore(Protocol):
    """The kept delivery attempts of outbox rows, and their retention."""

    @abc.abstractmethod
    async def list_deliveries(self, query: DeliveryQuery) -> list[DeliveryRow]:
        """Outbox rows matching `query`, newest first, each with its latest attempt."""

    @abc.abstractmethod
    async def get_delivery(self, outbox_id: int) -> DeliveryRow | None:
        """One outbox row with its latest attempt, whatever its status."""

    @abc.abstractmethod
    async def list_delivery_attempts(self, outbox_id: int) -> list[DeliveryAttempt]:
        """Every kept attempt of one outbox row, oldest first."""

    @abc.abstractmethod
    async def prune_delivery_attempts(self, *, before: datetime, limit: int = 5000) -> int:
        """Delete those of the oldest `limit` attempts started before `before`; returns how
        many (call again until none)."""


class DeadLetterStore(Protocol):
    """Dead letters: listed, replayed and resolved by the DLQ tools."""

    @abc.abstractmethod
    async def find_dead_letters(self, query: DeadLetterQuery) -> list[DeadLetter]:
        """Dead letters matching `query`, newest first."""

    @abc.abstractmethod
    async def get_dead_letter(self, dead_letter_id: int) -> DeadLetter | None:
        """One dead letter, whatever its status."""

    @abc.abstractmethod
    async def requeue_dead_letter(self, dead_letter_id: int, *, now: datetime) -> bool:
        """Put an open delivery dead letter's outbox row back to pending with attempts reset.

        The entry becomes `replayed`. If a newer revision of the record was queued for the sink
        since, the old row is marked superseded instead of delivered. False if the entry was not
        an open delivery dead letter (so replaying twice is harmless).
        """

    @abc.abstractmethod
    async def resolve_dead_letter(self, dead_letter_id: int, status: str) -> bool:
        """Move an open dead letter to `replayed` or `discarded`; False if it was not open."""


class ConnectionStore(Protocol):
    """How each connection is doing, and which files it imported."""

    @abc.abstractmethod
    async def save_connection_state(self, state: ConnectionState) -> None:
        """Upsert a connection's state; its `records_fetched` is added to the stored total."""

    @abc.abstractmethod
    async def list_connection_states(self) -> list[ConnectionState]:
        """Every recorded connection state with its committed cursor, by outlet and connector."""

    @abc.abstractmethod
    async def connection_activity(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Per (outlet, source_system): records, open dead letters, last success and error."""

    @abc.abstractmethod
    async def get_imported_file(
        self, outlet: str, connector: str, sha256: str
    ) -> ImportedFile | None:
        """The import of a file with this content at this connection, if it happened."""

    @abc.abstractmethod
    async def record_imported_file(self, entry: ImportedFile) -> None:
        """Remember a file as imported (after its rows are committed); a repeat is a no-op."""


class CursorStore(Protocol):
    """Poll cursors as operators see them: when and by whom each moved, and deliberate
    changes (set, reset), which are the one way a cursor moves back."""

    @abc.abstractmethod
    async def get_cursor_state(self, outlet: str, connector: str) -> CursorState | None:
        """One connection's cursor with its generation, read in one statement."""

    @abc.abstractmethod
    async def list_cursors(self) -> list[CursorState]:
        """Every stored cursor, by outlet and connector."""

    @abc.abstractmethod
    async def change_cursor(
        self, outlet: str, connector: str, value: str | None, *, actor: str, reason: str | None
    ) -> CursorChange:
        """Set the cursor to `value` (None: reset it), backwards too, in one transaction that
        bumps its generation (fencing poll pages in flight) and records the change."""

    @abc.abstractmethod
    async def cursor_changes(
        self, outlet: str, connector: str, *, limit: int = 20
    ) -> list[CursorChange]:
        """The operator changes of one cursor, newest first."""


class BackfillStore(Protocol):
    """Backfill tasks: requested, listed, and moved through their states (their progress
    is committed with their pages, through `IngestRequest.backfill`)."""

    @abc.abstractmethod
    async def create_backfill(
        self, outlet: str, connector: str, since: datetime, until: datetime, requested_by: str
    ) -> Backfill:
        """A new queued task for that window."""

    @abc.abstractmethod
    async def get_backfill(self, backfill_id: int) -> Backfill | None:
        """One task, whatever its state."""

    @abc.abstractmethod
    async def list_backfills(
        self,
        *,
        outlet: str | None = None,
        connector: str | None = None,
        active: bool = False,
        limit: int = 100,
    ) -> list[Backfill]:
        """Tasks, newest first (only queued and running ones when `active`)."""

    @abc.abstractmethod
    async def set_backfill_state(
        self, backfill_id: int, state: BackfillState, *, error: str | None = None
    ) -> Backfill | None:
        """Move a task to `state` (stamping when it started or finished) and keep `error`;
        a task already finished (done, failed, cancelled) stays as it is. None if unknown."""


class LeaseStore(Protocol):
    """Named leases with an expiry: one holder at a time across replicas."""

    clock: Clock  # `exclusive` reads the time of its leases from it
    # True where one daemon process at a time uses the store (SQLite): a lease or claim held by
    # another owner when the daemon starts was held by a process that died.
    single_process: ClassVar[bool] = False

    @abc.abstractmethod
    async def acquire_or_renew_lease(
        self, name: str, owner: str, *, ttl: float, now: datetime
    ) -> bool:
        """Take lease `name` for `owner` until `now + ttl` seconds, atomically.

        Succeeds when the lease is free, expired (`expires_at <= now`) or already held by
        `owner` (a renewal: `acquired_at` stays, `expires_at` moves); False while another owner
        holds it. `now` comes from the caller's clock, so replicas must keep their clocks in
        sync (NTP) to well within the ttl.
        """

    @abc.abstractmethod
    async def release_lease(self, name: str, owner: str) -> bool:
        """Give lease `name` up at once if `owner` holds it; False if it did not."""

    @abc.abstractmethod
    async def list_leases(self, prefix: str = "") -> list[Lease]:
        """Every lease whose name starts with `prefix` (expired ones too), by name."""

    @contextlib.asynccontextmanager
    async def exclusive(
        self, name: str, *, ttl: float = 30.0, wait: float = 60.0, poll: float = 0.1
    ) -> AsyncIterator[None]:
        """Hold lease `exclusive:NAME` for the block: one holder across every replica.

        For short critical sections such as a credential refresh (single-flight: the others
        wait, then read what the holder stored). The lease is renewed every `ttl / 3` while
        the block runs and released when it ends; if the holder dies it frees itself after
        `ttl`. Raises `TimeoutError` when it could not be taken within `wait` seconds.
        """
        lease, owner = f"exclusive:{name}", f"exclusive-{secrets.token_hex(8)}"
        async with asyncio.timeout(wait):
            while not await self.acquire_or_renew_lease(
                lease, owner, ttl=ttl, now=self.clock.now()
            ):
                await asyncio.sleep(poll)

        async def renew() -> None:
            while True:
                await asyncio.sleep(ttl / 3)
                await self.acquire_or_renew_lease(lease, owner, ttl=ttl, now=self.clock.now())

        renewing = asyncio.create_task(renew())
        try:
            yield
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await renewing
            await self.release_lease(lease, owner)


class CredentialStore(LeaseStore, Protocol):
    """Encrypted credentials and OAuth states (see sambung.credentials); a refresh is
    single-flight across replicas through a lease (`exclusive`)."""

    # The store keeps `secret` blobs as opaque bytes: core encrypts them before they arrive and
    # decrypts them after they leave, so no implementation ever sees or logs a token.

    @abc.abstractmethod
    async def save_credential(self, credential: StoredCredential) -> None:
        """Insert or replace the credential of (outlet, connector); durable when it returns."""

    @abc.abstractmethod
    async def get_credential(self, outlet: str, connector: str) -> StoredCredential | None:
        """The stored credential of one connection, if any."""

    @abc.abstractmethod
    async def list_credentials(self) -> list[CredentialInfo]:
        """Every stored credential's metadata (never its secret), by outlet and connector."""

    @abc.abstractmethod
    async def delete_credential(self, outlet: str, connector: str) -> bool:
        """Forget one connection's credential; False if there was none."""

    @abc.abstractmethod
    async def create_oauth_state(self, state: OAuthState) -> None:
        """Remember a state handed out with an authorization URL (and drop long-expired ones)."""

    @abc.abstractmethod
    async def consume_oauth_state(self, state_hash: str, *, now: datetime) -> OAuthState | None:
        """Mark a state used and return it as it was before this call; None if unknown.

        Atomic: of many concurrent calls with one state, exactly one gets it back with
        `consumed_at` None; the others see the `consumed_at` of that first use (a replay). The
        caller checks `expires_at` against `now` (an expired state is consumed all the same).
        """


@dataclass(frozen=True)
class RecordQuery:
    """Which records to find, as the console searches them: every given field must match."""

    outlet: str | None = None
    source_system: str | None = None
    kind: str | None = None
    external_id: str | None = None
    business_date: date | None = None
    limit: int = 100


@dataclass(frozen=True)
class OutboxEntry:
    """An outbox row as an operator reads it: where one revision went, how, and the answer."""

    id: int
    sink: str
    record_id: int
    revision: int
    payload: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None

    def __post_init__(self) -> None:
        _mask(self, "last_error")


class BrowseStore(Protocol):
    """Reads for the operator console: find records, follow one to its deliveries."""

    @abc.abstractmethod
    async def search_records(self, query: RecordQuery) -> list[StoredRecord]:
        """Records matching `query`, most recently changed first."""

    @abc.abstractmethod
    async def get_record_by_id(self, record_id: int) -> StoredRecord | None:
        """One stored record by its id."""

    @abc.abstractmethod
    async def record_outbox(self, record_id: int) -> list[OutboxEntry]:
        """Every outbox row of one record (each revision to each sink), oldest first."""

    @abc.abstractmethod
    async def recent_outbox(
        self, sink: str, *, status: str | None = None, limit: int = 50
    ) -> list[OutboxEntry]:
        """The newest outbox rows of one sink (of one status, if given), newest first."""


# What consumers that span concerns take (Python has no intersection type to say it inline).


class IntakeStore(IngestStore, ConnectionStore, CursorStore, Protocol):
    """What a poll loop or a file import uses: ingest, its cursor, and its connection state."""


class PollStore(IntakeStore, CredentialStore, BackfillStore, ControlStore, Protocol):
    """What the poll service uses: its loops' store, the credentials they poll with, the
    backfills they run, and the pauses and runs of their connections."""


class ReplayStore(IngestStore, DeadLetterStore, DeliveryAttemptStore, Protocol):
    """What the DLQ tools use: dead letters, ingest to replay them through, and the attempts a
    delivery entry lists."""


class DeliveryStore(OutboxStore, DeliveryAttemptStore, CredentialStore, Protocol):
    """What the dispatcher uses: the outbox, and the credentials of OAuth sinks."""


class Store(
    StoreLifecycle,
    IngestStore,
    OutboxStore,
    DeliveryAttemptStore,
    DeadLetterStore,
    ConnectionStore,
    CredentialStore,
    BrowseStore,
    CursorStore,
    BackfillStore,
    MonitoringStore,
    ControlStore,
    Protocol,
):
    """Durable state of the daemon, every concern of it. Implementations must give identical
    semantics."""


@dataclass(frozen=True)
class ImportedFile:
    """A CSV file whose rows are committed, recognised by its content hash."""

    outlet: str
    connector: str
    sha256: str
    name: str
    size: int
    rows_imported: int
    rows_rejected: int
    channel: str
    imported_at: datetime


class ConnectionStatus(StrEnum):
    """How a polled connection is doing."""

    OK = "ok"
    FAILING = "failing"
    NEEDS_REAUTH = "needs_reauth"
    PAUSED = "paused"


@dataclass(frozen=True)
class ConnectionState:
    """The health of one connection in one mode, as `sambung status` shows it."""

    outlet: str
    connector: str
    mode: str
    state: ConnectionStatus
    last_run_at: datetime | None = None
    last_success_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    # Added to the stored total, not replacing it.
    records_fetched: int = 0
    refused_credentials: str | None = None
    # Read only: the committed cursor of the connection, joined in by `list_connection_states`.
    cursor: str | None = None

    def __post_init__(self) -> None:
        _mask(self, "last_error")


@dataclass(frozen=True)
class CredentialInfo:
    """What may be shown of a stored credential: whose it is and when it expires, no secret."""

    outlet: str
    connector: str
    kind: str
    expires_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True)
class StoredCredential:
    """A connection's credential as the store keeps it: `secret` is already encrypted."""

    outlet: str
    connector: str
    kind: str
    secret: bytes = field(repr=False)
    expires_at: datetime | None
    updated_at: datetime

    @property
    def info(self) -> CredentialInfo:
        """The metadata, without the secret."""
        return CredentialInfo(
            self.outlet, self.connector, self.kind, self.expires_at, self.updated_at
        )


@dataclass(frozen=True)
class OAuthState:
    """One authorization URL handed out: whose connect flow it is, until when, used or not.

    `state_hash` is the SHA-256 (hex) of the state sent to the vendor, so the table holds
    nothing a visitor could replay; `secret` (encrypted, may be None) holds the PKCE verifier.
    """

    state_hash: str
    outlet: str
    connector: str
    redirect_uri: str
    secret: bytes | None = field(repr=False)
    created_at: datetime
    expires_at: datetime
    consumed_at: datetime | None = None
