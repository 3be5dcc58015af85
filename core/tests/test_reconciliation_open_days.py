"""A day still taking sales has no verdict: shown as open, left out of "latest" and the alert."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from sambung.alerts.rules import RULES, RuleContext
from sambung.delivery.reconciliation import ReconciliationQuery
from sambung.testing.accounting import days_ago

from .test_reconciliation import OUTLET, Rig, paid, pos

# The demo's closing time: a day is reconciled from its first minute, as it goes.
AT_ONCE = "00:00"


async def test_today_is_open_until_it_ends_even_when_reconciled_as_it_goes(
    tmp_path: Path, sambung_store_url: str
) -> None:
    morning = days_ago(0, 10)  # today 10:00 in Jakarta, on the injected clock
    async with Rig.start(tmp_path, sambung_store_url, after=AT_ONCE, start=morning) as rig:
        yesterday, today = days_ago(1, 12), days_ago(0, 9)
        await rig.ingest(pos("S-1", 40000, when=yesterday), paid("S-1", 40000, when=yesterday))
        await rig.ingest(pos("S-2", 30000, when=today))  # no payment yet: differs so far
        await rig.service.run_once()
        service = rig.service
        assert (await rig.result(today.date()))[1].status == "differs"  # reconciled already

        [latest] = await service.find(ReconciliationQuery())
        assert latest.result.business_date == yesterday.date()
        assert (latest.closed, latest.state) == (True, "matched")

        shown = await service.find(ReconciliationQuery(open=True, since=yesterday.date()))
        assert [(r.result.business_date, r.state) for r in shown] == [
            (yesterday.date(), "matched"),
            (today.date(), "open"),
        ]
        described = shown[1].describe()
        assert (described["closed"], described["state"], described["status"]) == (
            False,
            "open",
            "differs",
        )
        [asked] = await service.find(ReconciliationQuery(date=today.date()))
        assert asked.state == "open"
        [fresh] = await service.fresh(ReconciliationQuery(open=True))
        assert (fresh.result.business_date, fresh.state) == (today.date(), "open")
        assert await service.find(ReconciliationQuery(open=True, differs=True)) == []
        assert await service.differing() == []

        # The alert waits for a closed day: not today's running count, however long it differs.
        seen: dict[str, Any] = {}
        check = RULES["reconciliation_differs"]
        for _ in range(3):
            assert (
                await check(RuleContext(rig.store, rig.loaded, rig.clock.now(), first_seen=seen))
                == {}
            )
            rig.clock.advance(10 * 60)

        # Past midnight the day is over: its difference is a verdict now, and an alert.
        rig.clock.advance((days_ago(-1, 0, 5) - rig.clock.now()).total_seconds())
        [closed] = await service.find(ReconciliationQuery())
        assert (closed.result.business_date, closed.state) == (today.date(), "differs")
        assert [r.business_date for r in await service.differing()] == [today.date()]
        assert (
            await check(RuleContext(rig.store, rig.loaded, rig.clock.now(), first_seen=seen)) == {}
        )
        rig.clock.advance(10 * 60)
        fired = await check(RuleContext(rig.store, rig.loaded, rig.clock.now(), first_seen=seen))
        assert list(fired) == [f"{OUTLET}/{today.date()}"]


async def test_a_closing_time_past_midnight_keeps_the_day_open_until_then(
    tmp_path: Path, sambung_store_url: str
) -> None:
    bar = "26:00"  # a bar's day ends at two in the morning
    async with Rig.start(tmp_path, sambung_store_url, after=bar, start=days_ago(-1, 1)) as rig:
        day = days_ago(0, 22)
        await rig.ingest(pos("S-1", 50000, when=day))
        outlet = rig.loaded.config.outlets[0]
        assert rig.service.latest_closed(outlet) == days_ago(1, 0).date()
        [shown] = await rig.service.fresh(ReconciliationQuery(date=day.date()))
        assert shown.state == "open"
        rig.clock.advance(60 * 60)  # 02:00 the next morning: closed
        assert rig.service.latest_closed(outlet) == day.date()
        [shown] = await rig.service.fresh(ReconciliationQuery(date=day.date()))
        assert shown.state == "differs"


async def test_the_command_says_a_day_is_open_and_exits_zero_for_it(
    tmp_path: Path, sambung_store_url: str
) -> None:
    async with Rig.start(tmp_path, sambung_store_url, after=AT_ONCE) as rig:
        # The command reads the real clock: today (from its midnight) is open whatever the hour.
        await rig.ingest(pos("S-1", 40000, when=days_ago(0, 0)))
        await rig.service.run_once()
    config = tmp_path / "sambung.yaml"
    document = yaml.safe_load(config.read_text(encoding="utf-8"))
    document["store"] = {"url": sambung_store_url}
    config.write_text(yaml.safe_dump(document), encoding="utf-8")

    def reconcile(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "sambung", "reconcile", "-c", str(config), *args]
        return subprocess.run(command, capture_output=True, text=True, check=False)

    shown = await asyncio.to_thread(reconcile, "--open")
    assert shown.returncode == 0, shown.stderr
    assert f"kemang {days_ago(0, 0).date()} (Asia/Jakarta)  OPEN, so far differs by" in shown.stdout
    as_json = await asyncio.to_thread(reconcile, "--open", "--json")
    [line] = as_json.stdout.splitlines()
    assert json.loads(line)["state"] == "open" and as_json.returncode == 0
    latest = await asyncio.to_thread(reconcile)  # the latest closed day: none stored
    assert latest.returncode == 0 and "no reconciliation stored" in latest.stdout
