"""Rate budgets per vendor account: one token bucket and one in-flight cap, shared by every loop
that uses the same credentials (outlets often share one vendor account)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from .clock import Sleeper, monotonic, real_sleep


class TokenBucket:
    """`rate` calls per second on average, at most `burst` at once after a quiet spell."""

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = monotonic,
        sleep: Sleeper = real_sleep,
    ) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._stamp = clock()
        # Waiters queue in order, so a steady stream of newcomers cannot starve an old waiter.
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    async def acquire(self) -> None:
        """Take one token, waiting until one is there."""
        async with self._lock:
            while True:
                self._refill()
                # The tolerance absorbs float rounding: a wait of exactly the shortfall must do.
                if self._tokens >= 1 - 1e-9:
                    self._tokens -= 1
                    return
                await self._sleep((1 - self._tokens) / self.rate)


class Budget:
    """One vendor account's budget: a token per call and a cap on calls in flight."""

    def __init__(
        self,
        rate: float,
        max_in_flight: int,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = monotonic,
        sleep: Sleeper = real_sleep,
    ) -> None:
        self.bucket = TokenBucket(rate, burst, clock=clock, sleep=sleep)
        self.max_in_flight = max_in_flight
        self._slots = asyncio.Semaphore(max_in_flight)

    @asynccontextmanager
    async def call(self) -> AsyncIterator[None]:
        """Hold an in-flight slot and spend a token for the duration of one request."""
        async with self._slots:
            await self.bucket.acquire()
            yield


class Budgets:
    """Every account's budget in one daemon, created on first use."""

    def __init__(
        self, *, clock: Callable[[], float] = monotonic, sleep: Sleeper = real_sleep
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._budgets: dict[str, Budget] = {}

    def for_account(
        self, account: str, rate: float, max_in_flight: int, *, burst: float | None = None
    ) -> Budget:
        """The budget of `account`; the first loop to ask sets its size.

        `burst` (default: one second's worth) is how many calls may go at once after a quiet
        spell; 1 spaces every call evenly, for vendors that count calls per calendar second.
        """
        budget = self._budgets.get(account)
        if budget is None:
            budget = Budget(rate, max_in_flight, burst=burst, clock=self._clock, sleep=self._sleep)
            self._budgets[account] = budget
        return budget
