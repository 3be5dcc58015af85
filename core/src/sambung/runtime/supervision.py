"""Every background loop of the daemon runs under supervision: restarted when it crashes,
logged once when it starts failing and once when it recovers, cancelled on shutdown.

Supervision also feeds readiness. A loop is a problem that `/readyz` and status report by
name while it is down (waiting to be restarted after a crash), crash-looping (crashed
`CRASH_LOOP_CRASHES` times within `CRASH_LOOP_WINDOW` seconds, until it completes a cycle or
runs a window without crashing), failing (it said so with `failing()`, until its next cycle),
or stalled. Loops report each cycle they complete with `cycle_done()` (from inside the loop's
task); one started with an `interval` that has not for `max(stall_intervals * interval,
stall_min)` seconds is stalled (hung on a connection that answers nothing, say).

A loop that crashed because the store did not answer is restarted within `STORE_RETRY_DELAY`
seconds whatever its history: the store comes back by itself, and every loop should resume as
soon as it does, not a minute later.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from sambung.errors import StoreUnavailable

log = structlog.get_logger(__name__)

LoopFactory = Callable[[], Awaitable[None]]
# Restart delays after consecutive crashes, in seconds; the last one repeats.
RESTART_DELAYS = (1.0, 2.0, 5.0, 15.0, 60.0)
# The longest wait before restarting a loop the store failed under.
STORE_RETRY_DELAY = 1.0
# This many crashes within the window make a loop crash-looping, even while it runs between them.
CRASH_LOOP_CRASHES = 3
CRASH_LOOP_WINDOW = 60.0
# A loop with an interval is stalled after this many intervals without a cycle, and never
# sooner than `STALL_MIN_SECONDS` (a loop that cycles every 0.2 s may pause for a slow batch).
STALL_INTERVALS = 3.0
STALL_MIN_SECONDS = 30.0


@dataclass
class _LoopState:
    """What the supervisor knows of one loop."""

    interval: float | None
    crashes: deque[float] = field(default_factory=lambda: deque(maxlen=CRASH_LOOP_CRASHES))
    down: str | None = None  # the error it is waiting to restart after
    failing: str | None = None  # what the loop reported, until its next cycle
    last_cycle: float = 0.0
    cycled_since_crash: bool = False


# The supervised loop the current task belongs to (set in the loop's own task; child tasks
# such as a leased work task inherit it).
_current: contextvars.ContextVar[tuple[Loops, str] | None] = contextvars.ContextVar(
    "sambung_loop", default=None
)


def cycle_done() -> None:
    """Tell the supervisor of the calling loop that it completed a cycle (it is not stalled)."""
    found = _current.get()
    if found is not None:
        found[0].cycle_done(found[1])


def failing(error: BaseException | str) -> None:
    """Tell the supervisor of the calling loop that it cannot do its work right now (the store
    does not answer, say) though it keeps running: a problem until its next `cycle_done()`."""
    found = _current.get()
    if found is not None:
        found[0].failing(found[1], error)


class Loops:
    """The supervised loops of one daemon, by name."""

    def __init__(
        self,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        stall_intervals: float = STALL_INTERVALS,
        stall_min: float = STALL_MIN_SECONDS,
    ) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._monotonic = monotonic
        self._states: dict[str, _LoopState] = {}
        self.stall_intervals = stall_intervals
        self.stall_min = stall_min

    @property
    def _crashes(self) -> dict[str, deque[float]]:
        """Recent crash times per loop (for tests)."""
        return {name: state.crashes for name, state in self._states.items()}

    def start(
        self, name: str, factory: LoopFactory, *, interval: float | None = None, **bind: Any
    ) -> None:
        """Run `factory()` until shutdown, restarting it with a growing delay when it raises.

        A loop given an `interval` (seconds between its cycles) is watched for stalls and must
        call `cycle_done()` after each cycle.
        """
        if name in self._tasks:
            raise ValueError(f"a loop named {name!r} is already running")
        self._states[name] = _LoopState(interval, last_cycle=self._monotonic())
        self._tasks[name] = asyncio.create_task(self._supervise(name, factory, bind), name=name)

    def cycle_done(self, name: str) -> None:
        """Loop `name` completed a cycle."""
        state = self._states.get(name)
        if state is None:
            return
        if state.failing is not None:
            log.info("loop.recovered", loop=name)
        state.last_cycle = self._monotonic()
        state.failing = None
        state.cycled_since_crash = True

    def failing(self, name: str, error: BaseException | str) -> None:
        """Loop `name` runs but cannot do its work (see the module function)."""
        state = self._states.get(name)
        if state is None:
            return
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        if state.failing is None:
            log.warning("loop.failing", loop=name, error=text)
        state.failing = text

    async def _supervise(self, name: str, factory: LoopFactory, bind: dict[str, Any]) -> None:
        _current.set((self, name))
        state = self._states[name]
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
                if isinstance(err, StoreUnavailable):
                    delay = min(delay, STORE_RETRY_DELAY)
                error = f"{type(err).__name__}: {err}"
                if crashes == 0:  # once when it starts failing, not at every restart
                    bound.exception("loop.crashed", error=error, restart_in=delay)
                crashes += 1
                state.crashes.append(self._monotonic())
                state.cycled_since_crash = False
                state.down = error
                await asyncio.sleep(delay)
                state.down = None
                # The time it spent down is not a stall of the run that starts now.
                state.last_cycle = self._monotonic()
                bound.info("loop.restarting", crashes=crashes)

    def stall_after(self, name: str) -> float | None:
        """Seconds without a cycle after which loop `name` is stalled (None: not watched)."""
        state = self._states.get(name)
        if state is None or state.interval is None:
            return None
        return max(self.stall_intervals * state.interval, self.stall_min)

    def problems(self) -> dict[str, str]:
        """Loop name → why it keeps this daemon from being ready (stopped, down, crash-looping,
        failing, stalled)."""
        found = {name: "stopped: it should run until shutdown" for name in self.stopped()}
        now = self._monotonic()
        for name, state in self._states.items():
            if name in found:
                continue
            crashed = state.crashes
            stall = self.stall_after(name)
            if state.down is not None:
                found[name] = f"down after a crash, restarting: {state.down}"
            elif (
                len(crashed) == CRASH_LOOP_CRASHES
                and now - crashed[0] <= CRASH_LOOP_WINDOW
                and not state.cycled_since_crash
            ):
                found[name] = (
                    f"crash-looping: {CRASH_LOOP_CRASHES} crashes in {now - crashed[0]:.0f}s"
                )
            elif state.failing is not None:
                found[name] = f"failing: {state.failing}"
            elif stall is not None and now - state.last_cycle > stall:
                found[name] = (
                    f"stalled: no cycle completed for {now - state.last_cycle:.0f}s"
                    f" (expected every {state.interval:g}s)"
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
