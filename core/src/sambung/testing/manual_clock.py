"""A clock that only moves when a test moves it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sambung.clock import SystemClock


class ManualClock:
    """`sambung.clock.Clock` for tests: starts at `start` (default: now) and moves on `advance`."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = (start or SystemClock().now()).astimezone(UTC)

    def now(self) -> datetime:
        """The instant the test has set."""
        return self._now

    def advance(self, seconds: float) -> datetime:
        """Move forward by `seconds`; returns the new instant."""
        self._now += timedelta(seconds=seconds)
        return self._now
