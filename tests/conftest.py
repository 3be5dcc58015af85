"""Fixtures for the cross-package and end-to-end tests."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sambung.clock import Clock
from sambung.store import Store, open_store

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def hello_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The third-party `sambung-hello` distribution, really installed into a folder of its own.

    A daemon started with this folder on PYTHONPATH finds the plugin through its entry point
    alone: nothing in core or in the repo's plugins names it.
    """
    target = tmp_path_factory.mktemp("hello-site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "--target",
            str(target),
            str(FIXTURES / "sambung-hello"),
        ],
        check=True,
    )
    return target


@pytest.fixture
async def store(sambung_store_url: str, tmp_path: Path, clock: Clock) -> AsyncIterator[Store]:
    """An open store, each test once on SQLite and once on PostgreSQL (the semantics must not
    drift: cursors commit with their page, files are recognised by content, on both)."""
    opened = open_store(sambung_store_url, base_dir=tmp_path, clock=clock)
    await opened.open()
    yield opened
    await opened.close()
