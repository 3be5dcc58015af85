"""Fixtures shared by the Xendit tests (recorded payloads come from sambung's test kit)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sambung.store.sqlite import SqliteStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """An open SQLite store in a temporary folder."""
    opened = SqliteStore(tmp_path / "xendit.db", synchronous="OFF")
    await opened.open()
    yield opened
    await opened.close()
