"""Supervised loops: restarted after a crash, reported when stopped, cancelled on shutdown."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from sambung.errors import StoreUnavailable
from sambung.runtime import supervision
from sambung.runtime.admin import DAEMON_KEY, readyz
from sambung.runtime.supervision import Loops
from sambung.store.sqlite import SqliteStore


async def test_a_crashing_loop_is_restarted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervision, "RESTART_DELAYS", (0.0,))
    runs = 0
    running = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise RuntimeError("vendor returned garbage")
        running.set()
        await asyncio.Event().wait()

    loops = Loops()
    loops.start("flaky", flaky)
    await asyncio.wait_for(running.wait(), timeout=5)
    assert runs == 3 and loops.stopped() == []
    await loops.stop()


async def test_a_loop_that_returns_is_reported_as_stopped() -> None:
    async def done() -> None:
        return None

    loops = Loops()
    loops.start("short", done)
    await asyncio.sleep(0.01)
    assert loops.stopped() == ["short"]
    with pytest.raises(ValueError, match="already running"):
        loops.start("short", done)
    await loops.stop()


async def test_a_crash_looping_loop_is_a_problem_until_it_runs_a_window_without_crashing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(supervision, "RESTART_DELAYS", (0.0,))
    now = [1000.0]
    crashing = True
    running = asyncio.Event()

    async def inbox_runner() -> None:
        if crashing:
            raise OSError("inbox folder vanished")
        running.set()
        await asyncio.Event().wait()

    loops = Loops(monotonic=lambda: now[0])
    loops.start("filedrop:kemang/pawoon", inbox_runner)
    loops.start("outbox.backend", lambda: asyncio.Event().wait())
    while len(loops._crashes["filedrop:kemang/pawoon"]) < supervision.CRASH_LOOP_CRASHES:
        await asyncio.sleep(0)
    crashing = False
    await asyncio.wait_for(running.wait(), timeout=5)

    problems = loops.problems()
    assert list(problems) == ["filedrop:kemang/pawoon"]
    assert problems["filedrop:kemang/pawoon"].startswith("crash-looping: 3 crashes")
    now[0] += supervision.CRASH_LOOP_WINDOW + 1  # runs a whole window without crashing
    assert loops.problems() == {}
    await loops.stop()


async def test_a_loop_waiting_to_restart_after_a_crash_is_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(supervision, "RESTART_DELAYS", (30.0,))

    async def dispatcher() -> None:
        raise ConnectionError("connection is closed")

    loops = Loops()
    loops.start("outbox.backend", dispatcher)
    while not loops.problems():
        await asyncio.sleep(0)
    assert loops.problems() == {
        "outbox.backend": "down after a crash, restarting: ConnectionError: connection is closed"
    }
    assert loops.stopped() == []
    await loops.stop()


async def test_readyz_names_a_crash_looping_loop_and_turns_ready_after_recovery(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(supervision, "RESTART_DELAYS", (0.0,))
    now = [0.0]
    crashing = True

    async def inbox_runner() -> None:
        if crashing:
            raise OSError("inbox folder vanished")
        await asyncio.Event().wait()

    store = SqliteStore(tmp_path / "sambung.db")
    await store.open()
    loops = Loops(monotonic=lambda: now[0])
    app = web.Application()
    app[DAEMON_KEY] = cast(Any, SimpleNamespace(store=store, loops=loops))
    try:
        loops.start("filedrop:kemang/pawoon", inbox_runner)
        while len(loops._crashes["filedrop:kemang/pawoon"]) < supervision.CRASH_LOOP_CRASHES:
            await asyncio.sleep(0)
        crashing = False
        answer = await readyz(make_mocked_request("GET", "/readyz", app=app))
        assert answer.status == 503
        body = json.loads(cast(bytes, answer.body))
        assert body["ready"] is False
        assert body["problems"][0].startswith("loop filedrop:kemang/pawoon: crash-looping")

        now[0] += supervision.CRASH_LOOP_WINDOW + 1
        answer = await readyz(make_mocked_request("GET", "/readyz", app=app))
        assert answer.status == 200
    finally:
        await loops.stop()
        await store.close()


async def test_a_loop_that_completes_no_cycle_for_a_while_is_stalled_until_it_does() -> None:
    now = [0.0]
    cycle = asyncio.Event()

    async def dispatcher() -> None:
        while True:
            await cycle.wait()
            cycle.clear()
            supervision.cycle_done()

    loops = Loops(monotonic=lambda: now[0], stall_intervals=3, stall_min=30)
    loops.start("outbox.backend", dispatcher, interval=0.2)
    loops.start("poll:kemang:qasir", lambda: asyncio.Event().wait(), interval=300)
    loops.start("filedrop:kemang/pawoon", lambda: asyncio.Event().wait())  # not watched
    assert loops.stall_after("outbox.backend") == 30  # never sooner than stall_min
    assert loops.stall_after("poll:kemang:qasir") == 900  # three of its own intervals
    assert loops.stall_after("filedrop:kemang/pawoon") is None
    now[0] = 29.0
    assert loops.problems() == {}
    now[0] = 31.0
    assert loops.problems() == {
        "outbox.backend": "stalled: no cycle completed for 31s (expected every 0.2s)"
    }
    cycle.set()  # it completes a cycle: ready again
    while loops.problems():
        await asyncio.sleep(0)
    now[0] = 901.0
    assert list(loops.problems()) == ["outbox.backend", "poll:kemang:qasir"]
    await loops.stop()


async def test_a_loop_that_reports_failing_is_a_problem_until_its_next_cycle() -> None:
    step = asyncio.Event()

    async def heartbeat() -> None:
        supervision.failing("cannot renew the replica heartbeat: store unavailable")
        await step.wait()
        supervision.cycle_done()
        await asyncio.Event().wait()

    loops = Loops()
    loops.start("replica.heartbeat", heartbeat, interval=5)
    while not loops.problems():
        await asyncio.sleep(0)
    assert loops.problems() == {
        "replica.heartbeat": "failing: cannot renew the replica heartbeat: store unavailable"
    }
    step.set()
    while loops.problems():
        await asyncio.sleep(0)
    await loops.stop()


async def test_a_loop_the_store_failed_under_restarts_soon_and_is_ready_after_one_cycle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(supervision, "STORE_RETRY_DELAY", 0.0)
    runs = 0
    cycled = asyncio.Event()

    async def dispatcher() -> None:
        nonlocal runs
        runs += 1
        if runs <= 5:  # the database is away for five restarts
            raise StoreUnavailable("query failed: InterfaceError: connection is closed")
        supervision.cycle_done()
        cycled.set()
        await asyncio.Event().wait()

    loops = Loops()
    loops.start("outbox.backend", dispatcher, interval=0.2)
    # Not the growing crash delays (1, 2, 5, 15 s): back as soon as the store answers.
    await asyncio.wait_for(cycled.wait(), timeout=5)
    # Five crashes within the window, but it completed a cycle since: not crash-looping.
    assert loops.problems() == {}
    await loops.stop()


async def test_a_loop_that_fails_again_after_running_a_window_is_a_new_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(supervision, "RESTART_DELAYS", (0.0, 60.0))
    now = [0.0]
    runs = 0
    fail = asyncio.Event()
    restarted = asyncio.Event()

    async def dispatcher() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise ConnectionError("connection is closed")
        if runs == 3:
            restarted.set()
            await asyncio.Event().wait()
        await fail.wait()  # the second run works for a long while, then fails again
        raise ConnectionError("connection reset by peer")

    loops = Loops(monotonic=lambda: now[0])
    with structlog.testing.capture_logs() as logged:
        loops.start("outbox.backend", dispatcher)
        while runs < 2:
            await asyncio.sleep(0)
        now[0] += 3600.0
        fail.set()
        # Restarted after the first delay again (not the second, 60 s one) and logged again.
        await asyncio.wait_for(restarted.wait(), timeout=5)
        await loops.stop()
    crashed = [entry["error"] for entry in logged if entry["event"] == "loop.crashed"]
    assert crashed == [
        "ConnectionError: connection is closed",
        "ConnectionError: connection reset by peer",
    ]
    assert [entry["event"] for entry in logged].count("loop.recovered") == 1
