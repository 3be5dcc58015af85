"""Fixtures shared by the Xendit tests: recorded payloads, by file name."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sambung.parse import loads
from sambung.store.sqlite import SqliteStore

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def body() -> Callable[[str], bytes]:
    """The raw bytes of a recorded payload."""
    return lambda name: (FIXTURES / name).read_bytes()


@pytest.fixture
def payload(body: Callable[[str], bytes]) -> Callable[[str], Any]:
    """A recorded payload parsed as core parses it (exact Decimals); a fresh copy every call."""
    return lambda name: loads(body(name))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """An open SQLite store in a temporary folder."""
    opened = SqliteStore(tmp_path / "xendit.db", synchronous="OFF")
    await opened.open()
    yield opened
    await opened.close()
