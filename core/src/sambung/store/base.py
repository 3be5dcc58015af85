"""The store's interface and the plain values that cross it."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Literal

from ..errors import ConfigError
from ..models import Record

Channel = Literal["webhook", "poll", "file", "replay"]
Stage = Literal["ingest", "row", "delivery"]


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


@dataclass(frozen=True)
class CursorUpdate:
    """A poll cursor to move in the same transaction as the records it covers."""

    outlet: str
    connector: str
    value: str


@dataclass(frozen=True)
class IngestRequest:
    """One atomic write: everything in it is committed together or not at all."""

    raw: RawEvent | None = None
    records: Sequence[Record] = ()
    # Per record (same order): the sinks that must receive it, one outbox row each on change.
    routes: Sequence[Sequence[str]] = ()
    dead_letter: DeadLetterIn | None = None
    cursor: CursorUpdate | None = None


class Outcome(StrEnum):
    """What an upsert did to a record."""

    INSERTED = "inserted"
    UPDATED = "updated"
    UNCHANGED = "unchanged"  # same fingerprint: nothing new to deliver
    STALE = "stale"  # an older version than the one stored: ignored


@dataclass(frozen=True)
class RecordResult:
    """The stored id and revision of one upserted record and what happened to it."""

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


class Store(abc.ABC):
    """Durable state of the daemon. Implementations must give identical semantics."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and apply pending migrations."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Finish every accepted write, then release the database."""

    @abc.abstractmethod
    async def ingest(self, request: IngestRequest) -> IngestResult:
        """Commit a raw event, records (upserted), outbox rows, a dead letter and a cursor at once.

        Records are upserted on (outlet, source_system, kind, external_id). A record whose
        fingerprint is unchanged, or whose `source_updated_at` is older than the stored one, is
        left alone and gets no outbox row. Returns only after the transaction is durable; raises
        `StoreUnavailable` if it could not be committed.
        """

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise `StoreUnavailable` unless the store answers a query."""

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
    async def list_outbox(self, *, sink: str | None = None, limit: int = 1000) -> list[OutboxRow]:
        """Outbox rows in the order they were written."""

    @abc.abstractmethod
    async def list_dead_letters(
        self, *, stage: str | None = None, outlet: str | None = None, limit: int = 100
    ) -> list[DeadLetter]:
        """Dead letters, newest first."""

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
    async def save_connection_state(self, state: ConnectionState) -> None:
        """Upsert a connection's state; its `records_fetched` is added to the stored total."""

    @abc.abstractmethod
    async def list_connection_states(self) -> list[ConnectionState]:
        """Every recorded connection state with its committed cursor, by outlet and connector."""


def open_store(url: str, *, base_dir: Path) -> Store:
    """The store named by a URL; a relative SQLite path is read from `base_dir` (the YAML's)."""
    if url.startswith("sqlite:///"):
        from .sqlite import SqliteStore

        path = Path(url.removeprefix("sqlite:///"))
        return SqliteStore(path if path.is_absolute() else base_dir / path)
    if url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(
            "store.url: PostgreSQL support is not in this version yet; use sqlite:///"
        )
    raise ConfigError(f"store.url: unsupported store URL {url!r} (use sqlite:///PATH)")


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
