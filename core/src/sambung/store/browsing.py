"""The console's reads, written once for both SQL backends: record search and deliveries.

A mixin of `SqlStore`, kept apart so the console's queries grow without touching the core's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from .base import OutboxEntry, RecordQuery, StoredRecord
from .dialect import Dialect
from .queries import RECORD_COLUMNS, stored_record

OUTBOX_ENTRY = (
    "SELECT id, sink, record_id, revision, payload, status, attempts, next_attempt_at,"
    " last_error, created_at, delivered_at FROM outbox"
)
# SQLite's planner reads a sink's newest rows through its claim index and sorts them all; read
# backwards along the primary key instead, stopping at the limit (PostgreSQL does so itself).
NEWEST_FIRST = {"sqlite": " NOT INDEXED"}
# Outbox statuses few rows have at a time: an index finds them faster than a walk of every row.
SCARCE_STATUSES = frozenset({"pending", "dead"})


class BrowseQueries:
    """`BrowseStore` over the shared SQL core's `_fetch` and dialect."""

    dialect: ClassVar[Dialect]

    async def _fetch(self, sql: str, *args: Any) -> list[Sequence[Any]]:
        raise NotImplementedError  # SqlStore's

    async def search_records(self, query: RecordQuery) -> list[StoredRecord]:
        """Records matching `query`, most recently changed first."""
        conditions: list[str] = []
        params: list[Any] = []
        for column in ("outlet", "source_system", "kind", "external_id"):
            value = getattr(query, column)
            if value:
                conditions.append(f"{column} = ?")
                params.append(value)
        if query.business_date is not None:
            conditions.append("business_date = ?")
            params.append(self.dialect.day(query.business_date))
        clause = " WHERE " + " AND ".join(conditions) if conditions else ""
        rows = await self._fetch(
            f"SELECT {RECORD_COLUMNS} FROM records{clause} ORDER BY updated_at DESC, id DESC"
            " LIMIT ?",
            *params,
            query.limit,
        )
        return [stored_record(row, self.dialect.read_optional_time) for row in rows]

    async def get_record_by_id(self, record_id: int) -> StoredRecord | None:
        """One stored record by its id."""
        rows = await self._fetch(f"SELECT {RECORD_COLUMNS} FROM records WHERE id = ?", record_id)
        return stored_record(rows[0], self.dialect.read_optional_time) if rows else None

    async def record_outbox(self, record_id: int) -> list[OutboxEntry]:
        """Every outbox row of one record, oldest first."""
        rows = await self._fetch(f"{OUTBOX_ENTRY} WHERE record_id = ? ORDER BY id", record_id)
        return [self._entry(row) for row in rows]

    async def recent_outbox(
        self, sink: str, *, status: str | None = None, limit: int = 50
    ) -> list[OutboxEntry]:
        """The newest outbox rows of one sink, newest first."""
        source = OUTBOX_ENTRY + NEWEST_FIRST.get(self.dialect.name, "")
        if status is None:
            rows = await self._fetch(
                f"{source} WHERE sink = ? ORDER BY id DESC LIMIT ?", sink, limit
            )
        else:
            rows = await self._fetch(
                f"{source} WHERE sink = ? AND status = ? ORDER BY id DESC LIMIT ?",
                sink,
                status,
                limit,
            )
        return [self._entry(row) for row in rows]

    def _entry(self, r: Sequence[Any]) -> OutboxEntry:
        time, optional = self.dialect.read_time, self.dialect.read_optional_time
        return OutboxEntry(
            id=r[0],
            sink=r[1],
            record_id=r[2],
            revision=r[3],
            payload=r[4],
            status=r[5],
            attempts=r[6],
            next_attempt_at=time(r[7]),
            last_error=r[8],
            created_at=time(r[9]),
            delivered_at=optional(r[10]),
        )
