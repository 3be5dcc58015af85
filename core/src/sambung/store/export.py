"""Moving up: copy a SQLite store into PostgreSQL, ids and all, so nothing is fetched or
delivered twice afterwards.

The copy is generic: every table named in `EXPORTED_TABLES` that exists in the SQLite file is
copied column by column (the columns both sides have), each value converted to the PostgreSQL
column's type. A table added by a later migration is one more name in that list.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg

from sambung.errors import ConfigError

from .dialect import from_db_time
from .postgres import PostgresStore
from .sqlite import SqliteStore

# In the order foreign keys need them. Leases are not here on purpose: they belong to the
# processes running now, not to the data.
EXPORTED_TABLES = (
    "raw_events",
    "records",
    "outbox",
    "dead_letters",
    "delivery_attempts",
    "cursors",
    "cursor_changes",
    "backfills",
    "imported_files",
    "connection_states",
    "credentials",
    "oauth_states",
    "alerts",
    "alert_notices",
    "connection_controls",
    "connection_control_changes",
    "poll_runs",
)


def _text(value: Any) -> Any:
    return value if value is None or isinstance(value, str) else str(value)


def _time(value: Any) -> Any:
    return None if value is None else from_db_time(value)


def _date(value: Any) -> Any:
    return None if value is None else date.fromisoformat(value)


def _bytes(value: Any) -> Any:
    return value.encode() if isinstance(value, str) else value


def _integer(value: Any) -> Any:
    return None if value is None else int(value)


def _boolean(value: Any) -> Any:
    return None if value is None else bool(value)


def _numeric(value: Any) -> Any:
    return None if value is None else Decimal(str(value))


# From SQLite's values (text times, 0/1 flags, text or blob bodies) to the PostgreSQL column type.
_CONVERT: dict[str, Callable[[Any], Any]] = {
    "timestamp with time zone": _time,
    "date": _date,
    "bytea": _bytes,
    "bigint": _integer,
    "integer": _integer,
    "smallint": _integer,
    "boolean": _boolean,
    "numeric": _numeric,
}


async def export_sqlite(source: Path, target_url: str, *, replace: bool = False) -> dict[str, int]:
    """Copy the SQLite store at `source` into the PostgreSQL database at `target_url`.

    Both are migrated first. A target that already holds rows is refused unless `replace`,
    which empties it. Everything is copied in one PostgreSQL transaction from one SQLite read
    snapshot, and the id sequences are moved past the copied ids. Returns rows per table.
    """
    if not source.exists():
        raise ConfigError(f"store.url: there is no SQLite store at {source} to export")
    await SqliteStore(source).migrate()
    await PostgresStore(target_url).migrate()
    reader = sqlite3.connect(f"file:{source}?mode=ro", uri=True, isolation_level=None)
    conn = await asyncpg.connect(target_url)
    try:
        reader.execute("BEGIN")  # one snapshot, even if something writes the file meanwhile
        async with conn.transaction():
            return await _copy(reader, conn, replace=replace)
    finally:
        await conn.close()
        reader.close()


async def _copy(reader: sqlite3.Connection, conn: Any, *, replace: bool) -> dict[str, int]:
    present = {row[0] for row in reader.execute("SELECT name FROM sqlite_master")}
    tables = [table for table in EXPORTED_TABLES if table in present]
    target_columns: dict[str, dict[str, str]] = {}
    for table, column, data_type in await conn.fetch(
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = ANY($1::text[])",
        tables,
    ):
        target_columns.setdefault(table, {})[column] = data_type
    missing = [
        table for table in tables if table not in target_columns and _has_rows(reader, table)
    ]
    if missing:
        raise ConfigError(
            f"store: the PostgreSQL schema has no table {', '.join(missing)}; upgrade sambung"
        )
    tables = [table for table in tables if table in target_columns]
    filled = [t for t in tables if await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {t})")]
    if filled and not replace:
        raise ConfigError(
            f"the PostgreSQL store already holds rows (in {', '.join(filled)}); export only into"
            " an empty one, or pass --replace to empty it first"
        )
    if filled:
        await conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    copied: dict[str, int] = {}
    for table in tables:
        wanted = target_columns[table]
        columns = [
            row[1] for row in reader.execute(f"PRAGMA table_info({table})") if row[1] in wanted
        ]
        converters = [_CONVERT.get(wanted[column], _text) for column in columns]
        rows = _converted(reader, table, columns, converters)
        await conn.copy_records_to_table(table, records=rows, columns=columns)
        copied[table] = await conn.fetchval(f"SELECT COUNT(*) FROM {table}")
        if "id" in wanted:
            # Ids are kept (outbox and dead letters point at them): new rows must start after.
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                f" COALESCE(MAX(id), 0) + 1, false) FROM {table}"
            )
    return copied


def _has_rows(reader: sqlite3.Connection, table: str) -> bool:
    return bool(reader.execute(f"SELECT EXISTS (SELECT 1 FROM {table})").fetchone()[0])


def _converted(
    reader: sqlite3.Connection,
    table: str,
    columns: list[str],
    converters: list[Callable[[Any], Any]],
) -> Iterator[tuple[Any, ...]]:
    cursor = reader.execute(f"SELECT {', '.join(columns)} FROM {table}")
    while batch := cursor.fetchmany(5000):
        for row in batch:
            yield tuple(convert(value) for convert, value in zip(converters, row, strict=True))
