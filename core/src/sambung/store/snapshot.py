"""SQLite snapshots for `sambung backup` and `sambung restore`, and the lock that keeps a
restore from swapping the file under a process that has it open.

A snapshot is taken with SQLite's online backup API on a read connection: in WAL mode it reads
one consistent state of the database while the daemon goes on committing, which a copy of the
file (and its `-wal`) taken at the same moment would not be.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from sambung.errors import ConfigError, StoreInUse

from .migrations import sqlite_migrations

try:
    import fcntl
except ImportError:  # Windows: no flock; the lock is then advisory in name only
    fcntl = None  # type: ignore[assignment]

# Files SQLite keeps beside a database in WAL mode; they belong to it.
COMPANIONS = ("-wal", "-shm")


def lock_path(db: Path) -> Path:
    """The lock file of a SQLite store: `<file>.lock` beside it."""
    return db.with_name(db.name + ".lock")


@contextlib.contextmanager
def store_lock(db: Path, *, exclusive: bool) -> Iterator[None]:
    """Hold the store's lock: shared by every process using the store, exclusive for a restore.

    Non-blocking: a restore refuses while anything has the store open, and a store refuses to
    open while a restore runs. The lock ends with the process, so a crash leaves none behind.
    """
    if fcntl is None:
        yield
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    try:
        # Read-only is enough for flock, and 0644 (it is empty) lets a lock file that root
        # created by running a command be opened by the service's user as well.
        fd = os.open(lock_path(db), os.O_RDONLY | os.O_CREAT, 0o644)
    except PermissionError:
        if exclusive:
            raise
        yield  # a reader in a folder it may not write to: nothing it does needs the lock
        return
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            if exclusive:
                raise StoreInUse(
                    f"store.url: {db} is in use by a running sambung (the daemon, or another"
                    " command); stop it first (systemctl stop sambung)"
                ) from None
            raise StoreInUse(
                f"store.url: {db} is being restored (sambung restore); start again when it is done"
            ) from None
        yield
    finally:
        os.close(fd)


def take_shared_lock(db: Path) -> contextlib.ExitStack:
    """The shared lock, held until the returned stack is closed (a store's lifetime)."""
    stack = contextlib.ExitStack()
    stack.enter_context(store_lock(db, exclusive=False))
    return stack


def newest_known_version() -> int:
    """The newest schema version this sambung's SQLite migrations reach."""
    known = sqlite_migrations()
    return known[-1][0] if known else 0


def schema_version(db: Path) -> int:
    """The newest migration applied to the database at `db` (0 if none)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        try:
            row = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
        except sqlite3.DatabaseError as err:
            raise ConfigError(f"{db}: not a sambung database ({err})") from err
        return int(row[0] or 0)
    finally:
        conn.close()


def online_backup(db: Path, target: Path) -> int:
    """Copy one consistent state of the live database at `db` into a new file `target`, as a
    self-contained file (no `-wal` beside it); returns its schema version."""
    if not db.exists():
        raise ConfigError(f"store.url: {db} does not exist (has the daemon ever run?)")
    source = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        source.execute("PRAGMA busy_timeout = 10000")
        destination = sqlite3.connect(target)
        try:
            # All pages in one step: one read transaction, so one state, however busy the
            # writer is (a stepped backup restarts whenever another connection commits).
            source.backup(destination)
            destination.execute("PRAGMA journal_mode = DELETE")
        finally:
            destination.close()
    finally:
        source.close()
    return schema_version(target)


def check_database(db: Path) -> int:
    """Refuse a file that is not a sound sambung database; returns its schema version."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        try:
            verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
        except sqlite3.DatabaseError as err:
            raise ConfigError(f"{db}: not a SQLite database ({err})") from err
    finally:
        conn.close()
    if verdict != "ok":
        raise ConfigError(f"{db}: the database is damaged ({verdict})")
    return schema_version(db)
