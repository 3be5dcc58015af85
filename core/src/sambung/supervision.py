"""Every background loop of the daemon runs under supervision: restarted when it crashes,
logged once when it starts failing and once when it recovers, cancelled on shutdown.

Supervision also feeds readiness: a loop that is down (waiting to be restarted after a crash)
or crash-looping (crashed `CRASH_LOOP_CRASHES` times within `CRASH_LOOP_WINDOW` seconds) is a
problem that `/readyz` and status report by name until it has run a window without crashing.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

log = structlog.get_logger("sambung.supervision")

LoopFactory = Callable[[], Awaitable[None]]
# Restart delays after consecutive crashes, in seconds; the last one repeats.
RESTART_DELAYS = (1.0, 2.0, 5.0, 15.0, 60.0)
# This many crashes within the window make a loop crash-looping, even while it runs between them.
CRASH_LOOP_CRASHES = 3
CRASH_LOOP_WINDOW = 60.0


class Loops:
    """The supervised loops of one daemon, by name."""

    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._monotonic = monotonic
        self._crashes: dict[str, deque[float]] = {}
        self._down: dict[str, str] = {}  # loop → the error it is waiting to restart after

    def start(self, name: str, factory: LoopFactory, **bind: Any) -> None:
        """Run `factory()` until shutdown, restarting it with a growing delay when it raises."""
        if name in self._tasks:
            raise ValueError(f"a loop named {name!r} is already running")
        self._crashes[name] = deque(maxlen=CRASH_LOOP_CRASHES)
        self._tasks[name] = asyncio.create_task(self._supervise(name, factory, bind), name=name)

    async def _supervise(self, name: str, factory: LoopFactory, bind: dict[str, Any]) -> None:
        bound = log.bind(loop=name, **bind)
        crashes = 0
        while True:
            started = self._monotonic()
            try:
                await factory()
                bound.warning("loop.returned", hint="a loop should run until cancelled")
                return
            except asyncio.CancelledError:
                raise
            except Exception as err:
                if crashes and self._monotonic() - started >= CRASH_LOOP_WINDOW:
                    # It ran a whole window since the last restart: this is a new failure,
                    # logged again and restarted quickly, not the tail of the old one.
                    bound.info("loop.recovered", crashes=crashes)
                    crashes = 0
                delay = RESTART_DELAYS[min(crashes, len(RESTART_DELAYS) - 1)]
                error = f"{type(err).__name__}: {err}"
                if crashes == 0:  # once when it starts failing, not at every restart
                    bound.exception("loop.crashed", error=error, restart_in=delay)
                crashes += 1
                self._crashes[name].append(self._monotonic())
                self._down[name] = error
                await asyncio.sleep(delay)
                self._down.pop(name, None)
                bound.info("loop.restarting", crashes=crashes)

    def problems(self) -> dict[str, str]:
        """Loop name → why it keeps this daemon from being ready (stopped, down, crash-looping)."""
        found = {name: "stopped: it should run until shutdown" for name in self.stopped()}
        now = self._monotonic()
        for name, crashed in self._crashes.items():
            if name in found:
                continue
            if name in self._down:
                found[name] = f"down after a crash, restarting: {self._down[name]}"
            elif len(crashed) == CRASH_LOOP_CRASHES and now - crashed[0] <= CRASH_LOOP_WINDOW:
                found[name] = (
                    f"crash-looping: {CRASH_LOOP_CRASHES} crashes in {now - crashed[0]:.0f}s"
                )
        return found

    def stopped(self) -> list[str]:
        """Names of loops that are no longer running (they should run until shutdown)."""
        return sorted(name for name, task in self._tasks.items() if task.done())

    async def stop(self) -> None:
        """Cancel every loop and wait for them to unwind."""
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()
