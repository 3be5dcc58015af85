"""Waiting in an end-to-end test for the daemon process to reach a state."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def until(check: Callable[[], Awaitable[bool]], seconds: float = 60.0) -> None:
    """Wait (serving the test's fakes meanwhile) until `await check()` is true."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.2)
