"""The durable store: one interface, an embedded SQLite and a shared PostgreSQL implementation.

No SQL lives outside this package. Every write that must be atomic goes through `ingest`, which
commits a raw event, its records, their outbox rows, a dead letter and a cursor together.
"""

from __future__ import annotations

from .base import (
    ConnectionState,
    ConnectionStatus,
    CredentialInfo,
    CursorUpdate,
    DeadLetter,
    DeadLetterIn,
    DeadLetterQuery,
    ImportedFile,
    IngestRequest,
    IngestResult,
    Lease,
    LeaseHold,
    OAuthState,
    OutboxRow,
    Outcome,
    RawEvent,
    RecordResult,
    Store,
    StoredCredential,
    StoredRecord,
)
from .factory import display_url, open_store

__all__ = [
    "ConnectionState",
    "ConnectionStatus",
    "CredentialInfo",
    "CursorUpdate",
    "DeadLetter",
    "DeadLetterIn",
    "DeadLetterQuery",
    "ImportedFile",
    "IngestRequest",
    "IngestResult",
    "Lease",
    "LeaseHold",
    "OAuthState",
    "OutboxRow",
    "Outcome",
    "RawEvent",
    "RecordResult",
    "Store",
    "StoredCredential",
    "StoredRecord",
    "display_url",
    "open_store",
]
