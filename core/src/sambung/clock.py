"""Time as a dependency, so tests move it instead of sleeping."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """What core and plugins ask for the time."""

    def now(self) -> datetime:
        """The current instant, timezone-aware."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """The current instant in UTC."""
        return datetime.now(UTC)


class FixedClock:
    """A clock standing still at one instant (what a check decided at, an earlier day)."""

    def __init__(self, at: datetime) -> None:
        self._at = at

    def now(self) -> datetime:
        """The instant it stands at."""
        return self._at


class Sleeper(Protocol):
    """What core awaits to wait: injected so tests move time instead of sleeping."""

    async def __call__(self, seconds: float) -> None:
        """Return after `seconds` (or at once, under a fake clock that jumps ahead)."""
        ...


async def real_sleep(seconds: float) -> None:
    """Wait for real, on the running event loop."""
    await asyncio.sleep(max(0.0, seconds))


def monotonic() -> float:
    """Seconds on the monotonic clock, for rate budgets and durations."""
    return time.monotonic()
