"""The store's snapshot primitives: an online backup sees only committed state, and the store
lock keeps a restore and every other user of the file apart."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sambung.errors import ConfigError, StoreInUse
from sambung.store.snapshot import (
    check_database,
    newest_known_version,
    online_backup,
    schema_version,
    store_lock,
)
from sambung.store.sqlite import SqliteStore
from sambung.testing.manual_clock import ManualClock


async def migrated(path: Path, clock: ManualClock) -> None:
    store = SqliteStore(path, synchronous="OFF", clock=clock)
    await store.migrate()


async def test_a_snapshot_holds_what_is_committed_and_nothing_in_flight(
    tmp_path: Path, clock: ManualClock
) -> None:
    db = tmp_path / "sambung.db"
    await migrated(db, clock)
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("PRAGMA journal_mode = WAL")
    writer.execute(
        "INSERT INTO cursors (outlet, connector, value, updated_at) VALUES ('a', 'b', 'c', 'd')"
    )
    writer.execute("BEGIN IMMEDIATE")  # a writer mid-transaction while the backup runs
    writer.execute(
        "INSERT INTO cursors (outlet, connector, value, updated_at) VALUES ('x', 'y', 'z', 'd')"
    )

    version = online_backup(db, tmp_path / "snapshot.db")
    writer.execute("COMMIT")
    writer.close()

    assert version == newest_known_version() == schema_version(db)
    assert check_database(tmp_path / "snapshot.db") == version
    assert not (tmp_path / "snapshot.db-wal").exists(), "a snapshot is one self-contained file"
    with sqlite3.connect(tmp_path / "snapshot.db") as conn:
        assert conn.execute("SELECT outlet FROM cursors").fetchall() == [("a",)]


async def test_an_open_store_refuses_a_restore_and_a_restore_refuses_to_open(
    tmp_path: Path, clock: ManualClock
) -> None:
    db = tmp_path / "sambung.db"
    store = SqliteStore(db, synchronous="OFF", clock=clock)
    await store.open()
    try:
        with (
            pytest.raises(StoreInUse, match="in use by a running sambung"),
            store_lock(db, exclusive=True),
        ):
            pass
        with store_lock(db, exclusive=False):  # readers and backups share it
            pass
    finally:
        await store.close()
    with store_lock(db, exclusive=True), pytest.raises(StoreInUse, match="being restored"):
        await SqliteStore(db, synchronous="OFF", clock=clock).open()
    await store.open()  # the restore is over
    await store.close()


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(ConfigError, match="not a SQLite database"):
        check_database(junk)
