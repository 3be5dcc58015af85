"""Which store a URL names: kept apart from `base`, which the backends import, so that
nothing in the store package imports in a circle."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from sambung.clock import Clock
from sambung.errors import ConfigError

from .base import Store


def open_store(
    url: str,
    *,
    base_dir: Path,
    owner: str | None = None,
    clock: Clock | None = None,
    writer_process: bool = False,
) -> Store:
    """The store named by a URL; a relative SQLite path is read from `base_dir` (the YAML's).

    `owner` names this process (its replica id) in what it claims in a shared store; `clock`
    stamps every write (the system clock unless given); `writer_process` runs a SQLite store's
    group commit in a process of its own (the daemon's choice, `store.writer_process`).
    """
    if url.startswith("sqlite:///"):
        from .sqlite import SqliteStore

        path = Path(url.removeprefix("sqlite:///"))
        path = path if path.is_absolute() else base_dir / path
        return SqliteStore(path, clock=clock, owner=owner or "local", writer_process=writer_process)
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore

        return PostgresStore(url, owner=owner, clock=clock)
    raise ConfigError(
        f"store.url: unsupported store URL {display_url(url)!r}"
        " (use sqlite:///PATH or postgresql://USER@HOST/DB)"
    )


def display_url(url: str) -> str:
    """A store URL fit for printing: any password in it replaced by `***`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
