"""Every background loop of the daemon runs under supervision: restarted when it crashes,
logged once when it starts failing and once when it recovers, cancelled on shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

log = structlog.get_logger("sambung.supervision")

LoopFactory = Callable[[], Awaitable[None]]
# Restart delays after consecutive crashes, in seconds; the last one repeats.
RESTART_DELAYS = (1.0, 2.0, 5.0, 15.0, 60.0)


class Loops:
    """The supervised loops of one daemon, by name."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, name: str, factory: LoopFactory, **bind: Any) -> None:
        """Run `factory()` until shutdown, restarting it with a growing delay when it raises."""
        if name in self._tasks:
            raise ValueError(f"a loop named {name!r} is already running")
        self._tasks[name] = asyncio.create_task(self._supervise(name, factory, bind), name=name)

    async def _supervise(self, name: str, factory: LoopFactory, bind: dict[str, Any]) -> None:
        bound = log.bind(loop=name, **bind)
        crashes = 0
        while True:
            try:
                await factory()
                bound.warning("loop.returned", hint="a loop should run until cancelled")
                return
            except asyncio.CancelledError:
                raise
            except Exception as err:
                delay = RESTART_DELAYS[min(crashes, len(RESTART_DELAYS) - 1)]
                if crashes == 0:  # once when it starts failing, not at every restart
                    bound.exception(
                        "loop.crashed", error=f"{type(err).__name__}: {err}", restart_in=delay
                    )
                crashes += 1
                await asyncio.sleep(delay)
                bound.info("loop.restarting", crashes=crashes)

    def stopped(self) -> list[str]:
        """Names of loops that are no longer running (they should run until shutdown)."""
        return sorted(name for name, task in self._tasks.items() if task.done())

    async def stop(self) -> None:
        """Cancel every loop and wait for them to unwind."""
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()
