"""Pausing a connection as status, alerts and the control service see it (both stores)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sambung.alerts.rules import RULES
from sambung.errors import NotPolled, UnknownConnection
from sambung.intake.controls import ControlService, describe_run
from sambung.runtime.status import connection_status
from sambung.store import ConnectionState, ConnectionStatus, PollRun, RunOutcome, Store
from sambung.testing.manual_clock import ManualClock

from .test_alert_rules import context, loaded_config


async def test_a_paused_connection_that_was_failing_does_not_alert(
    store: Store, clock: ManualClock, tmp_path: Path
) -> None:
    loaded = loaded_config(tmp_path, connection_failing_minutes=5)
    await store.save_connection_state(
        ConnectionState("kemang", "qasir", "poll", ConnectionStatus.FAILING, last_error="HTTP 500")
    )
    seen: dict[str, Any] = {}
    check = RULES["connection_failing"]
    assert await check(context(store, loaded, clock, first_seen=seen)) == {}
    clock.advance(6 * 60)
    assert list(await check(context(store, loaded, clock, first_seen=seen))) == ["kemang/qasir"]

    await store.set_paused("kemang", "qasir", True, actor="ayu", reason="vendor down")
    assert await check(context(store, loaded, clock, first_seen=seen)) == {}
    assert seen == {}  # resumed and still failing, it counts afresh


async def test_status_shows_who_paused_when_and_why(
    store: Store, clock: ManualClock, tmp_path: Path
) -> None:
    loaded = loaded_config(tmp_path)
    wakes: list[tuple[str, str]] = []
    service = ControlService(
        store, lambda: loaded, clock=clock, wake=lambda o, c: wakes.append((o, c))
    )
    await service.pause("kemang", "qasir", "ayu", "till replaced")
    shown = {c["connector"]: c for c in await connection_status(store, loaded)}
    assert shown["qasir"]["state"] == "paused"
    assert shown["qasir"]["pause"] == {
        "paused": True,
        "actor": "operator:ayu",
        "reason": "till replaced",
        "changed_at": clock.now().isoformat(),
    }
    assert shown["xendit"]["pause"]["paused"] is False and wakes == []

    await service.resume("kemang", "qasir", "ayu")
    shown = {c["connector"]: c for c in await connection_status(store, loaded)}
    assert shown["qasir"]["state"] == "not_yet_run" and not shown["qasir"]["pause"]["paused"]
    assert wakes == [("kemang", "qasir")]  # a resume starts the loop's next run now


async def test_only_a_configured_polled_or_file_drop_connection_pauses(
    store: Store, clock: ManualClock, tmp_path: Path
) -> None:
    service = ControlService(store, lambda: loaded_config(tmp_path), clock=clock)
    with pytest.raises(UnknownConnection):
        await service.pause("kemang", "moka", "ayu")
    with pytest.raises(UnknownConnection):
        await service.runs("blok-m", "qasir")
    assert await store.list_controls() == []


async def test_a_webhook_only_connection_has_nothing_to_pause(
    store: Store, clock: ManualClock, tmp_path: Path
) -> None:
    loaded = loaded_config(tmp_path)
    first = loaded.connections[0]
    webhook_only = first.settings.model_copy(update={"mode": frozenset({"webhook"})})
    loaded.connections[0] = replace(first, settings=webhook_only)
    service = ControlService(store, lambda: loaded, clock=clock)
    with pytest.raises(NotPolled, match="webhooks are always accepted"):
        await service.pause("kemang", loaded.connections[0].name, "ayu")


def test_a_run_is_described_with_its_duration_and_unchanged_records() -> None:
    from datetime import UTC, datetime, timedelta

    start = datetime(2026, 1, 1, tzinfo=UTC)
    run = PollRun(
        "kemang", "qasir", "live", start, start + timedelta(seconds=1.5), RunOutcome.OK,
        records_fetched=5, records_new=1, records_changed=1,
    )  # fmt: skip
    shown = describe_run(run)
    assert (shown["seconds"], shown["records_unchanged"], shown["outcome"]) == (1.5, 3, "ok")


async def test_the_pause_resume_and_runs_api(
    store: Store, clock: ManualClock, tmp_path: Path
) -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer
    from sambung.intake.controls import add_control_routes

    loaded = loaded_config(tmp_path)
    app = web.Application()
    add_control_routes(app, ControlService(store, lambda: loaded, clock=clock))
    await store.record_run(
        PollRun("kemang", "qasir", "live", clock.now(), clock.now(), RunOutcome.FAILED, error="x")
    )
    base = "/api/v1/connections/kemang/qasir"
    async with TestClient(TestServer(app)) as client:
        answer = await client.post(f"{base}/pause", json={"reason": "vendor down"})
        assert answer.status == 200
        body = await answer.json()
        assert (body["paused"], body["actor"], body["reason"]) == (
            True,
            "operator:admin-api",
            "vendor down",
        )
        assert (await store.get_control("kemang", "qasir")).paused  # type: ignore[union-attr]
        resumed = await client.post(f"{base}/resume")
        assert resumed.status == 200 and (await resumed.json())["paused"] is False
        shown = await (await client.get(f"{base}/pause")).json()
        assert shown["paused"] is False
        assert [(h["paused"], h["reason"]) for h in shown["history"]] == [
            (False, None),
            (True, "vendor down"),
        ]

        runs = await (await client.get(f"{base}/runs?limit=5")).json()
        assert [r["outcome"] for r in runs["runs"]] == ["failed"]
        assert (await client.get(f"{base}/runs?limit=many")).status == 400
        assert (await client.post(f"{base}/pause", json={"why": "?"})).status == 400
        missing = "/api/v1/connections/kemang/moka/pause"
        assert (await client.post(missing)).status == 404
