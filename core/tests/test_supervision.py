"""Supervised loops: restarted after a crash, reported when stopped, cancelled on shutdown."""

from __future__ import annotations

import asyncio

import pytest
from sambung import supervision
from sambung.supervision import Loops


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
