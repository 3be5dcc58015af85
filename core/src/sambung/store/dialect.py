"""What SQLite and PostgreSQL spell differently in the SQL both stores share (`sql.SqlStore`).

Shared SQL is written once, with `?` placeholders and stored values encoded here: SQLite keeps
times as sortable UTC text and dates as ISO text, PostgreSQL as `timestamptz` and `date`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any


def to_db_time(value: datetime) -> str:
    """An aware datetime as sortable, fixed-width UTC text (2026-11-26T22:27:32.000000Z)."""
    # isoformat is several times faster than strftime, and this runs per record.
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def from_db_time(value: str) -> datetime:
    """Sortable UTC text back to an aware datetime."""
    return datetime.fromisoformat(value)


@lru_cache(maxsize=512)
def numbered(sql: str) -> str:
    """`sql` with its `?` placeholders as `$1, $2, ...` (asyncpg's style), in order."""
    # The shared SQL holds no `?` in a literal or an operator, so every one is a placeholder.
    first, *rest = sql.split("?")
    return first + "".join(f"${n}{part}" for n, part in enumerate(rest, 1))


class Dialect:
    """How one backend is spoken to: the PostgreSQL spelling, which SQLite's overrides."""

    name = "postgres"
    # Appended to a SELECT whose row the transaction goes on to change. SQLite needs nothing:
    # its writer holds the database's write lock (BEGIN IMMEDIATE) for the whole transaction.
    lock_rows = " FOR UPDATE"
    # Which index the records-changed-since query reads (SQLite's planner picks a worse one).
    records_by_update_time = ""

    def sql(self, text: str) -> str:
        """Shared SQL (`?` placeholders) as this driver takes it."""
        return numbered(text)

    def time(self, value: datetime) -> Any:
        """An aware datetime as stored."""
        return value

    def optional_time(self, value: datetime | None) -> Any:
        """An aware datetime (or None) as stored."""
        return None if value is None else self.time(value)

    def read_time(self, value: Any) -> datetime:
        """A stored time back to an aware datetime."""
        return value  # type: ignore[no-any-return]  # asyncpg gives timestamptz as datetime

    def read_optional_time(self, value: Any) -> datetime | None:
        """A stored time (or NULL) back to an aware datetime (or None)."""
        return None if value is None else self.read_time(value)

    def day(self, value: date) -> Any:
        """A business date as stored."""
        return value

    def read_day(self, value: Any) -> date:
        """A stored business date back to a date."""
        return value  # type: ignore[no-any-return]  # asyncpg gives date as date


class SqliteDialect(Dialect):
    """SQLite: `?` placeholders as they are, times and dates as sortable text."""

    name = "sqlite"
    lock_rows = ""
    # The rows written since a time are few; without the hint SQLite would walk every record
    # of the outlet through records_business_date instead.
    records_by_update_time = " INDEXED BY records_updated"

    def sql(self, text: str) -> str:
        """Shared SQL as it is: sqlite3 takes `?` placeholders."""
        return text

    def time(self, value: datetime) -> str:
        """An aware datetime as sortable UTC text."""
        return to_db_time(value)

    def read_time(self, value: Any) -> datetime:
        """Sortable UTC text back to an aware datetime."""
        return from_db_time(value)

    def day(self, value: date) -> str:
        """A business date as ISO text."""
        return value.isoformat()

    def read_day(self, value: Any) -> date:
        """ISO text back to a date."""
        return date.fromisoformat(value)


POSTGRES = Dialect()
SQLITE = SqliteDialect()
