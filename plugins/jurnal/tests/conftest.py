"""Fixtures shared by the Jurnal tests: recorded payloads, by file name."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sambung.parse import loads

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def payload() -> Callable[[str], Any]:
    """A recorded payload parsed as core parses it (exact Decimals); a fresh copy every call."""
    return lambda name: loads((FIXTURES / name).read_bytes())
