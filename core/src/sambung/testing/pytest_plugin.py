"""pytest fixtures from sambung's test kit, loaded automatically wherever sambung is installed."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .daemon import DaemonProcess

if TYPE_CHECKING:
    from sambung.store import Store

    from .manual_clock import ManualClock

# The PostgreSQL server tests run against; each test gets a schema of its own in it.
POSTGRES_TEST_URL = os.environ.get(
    "SAMBUNG_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)


@pytest.fixture
def clock() -> ManualClock:
    """The test's clock: starts at the real instant and moves only on `advance`.

    The `store` fixture writes with it, so a test that moves it moves the store's time too
    (rows fall due, leases run out) and never depends on the date it runs on.
    """
    from .manual_clock import ManualClock

    return ManualClock()


@pytest.fixture
async def store(tmp_path: Path, clock: ManualClock) -> AsyncIterator[Store]:
    """An open SQLite store in tmp_path, on the test's `clock` (core's own tests override it to
    run on both stores)."""
    from sambung.store.sqlite import SqliteStore

    opened = SqliteStore(tmp_path / "sambung.db", synchronous="OFF", clock=clock)
    await opened.open()
    yield opened
    await opened.close()


@pytest.fixture
def body(request: pytest.FixtureRequest) -> Callable[[str], bytes]:
    """The raw bytes of a recorded payload in the `fixtures/` folder beside the test file."""
    folder = request.path.parent / "fixtures"
    return lambda name: (folder / name).read_bytes()


@pytest.fixture
def payload(body: Callable[[str], bytes]) -> Callable[[str], Any]:
    """A recorded payload parsed as core parses it (exact Decimals); a fresh copy every call."""
    from sambung.parse import loads

    return lambda name: loads(body(name))


@pytest.fixture
def sambung_daemon(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """Start `sambung run` as a real process: `sambung_daemon(config_dict, env=...)`.

    Each call gets a free port, the YAML written to a temporary folder and a SQLite file beside
    it; every process still running at the end of the test is killed.
    """
    started: list[DaemonProcess] = []

    def start(
        config: Mapping[str, Any],
        *,
        env: Mapping[str, str] | None = None,
        args: tuple[str, ...] = (),
    ) -> DaemonProcess:
        workdir = tmp_path / f"daemon{len(started)}"
        workdir.mkdir()
        process = DaemonProcess(workdir, config, env=env, args=args)
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.kill()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped after the test.

    The server is `SAMBUNG_TEST_POSTGRES` (default postgresql://postgres@127.0.0.1:5432/test);
    it must be running: a test that needs it fails rather than skips.
    """
    from sambung.store.postgres import create_schema, drop_schema

    name, url = asyncio.run(create_schema(POSTGRES_TEST_URL, prefix="test"))
    try:
        yield url
    finally:
        asyncio.run(drop_schema(POSTGRES_TEST_URL, name))


@pytest.fixture(params=["sqlite", "postgresql"])
def sambung_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A `store.url` for each backend in turn: a SQLite file in tmp_path, then a fresh schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sambung.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url
