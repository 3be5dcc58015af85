"""Each alert rule finds what holds now, on a clock the test moves; the alert service turns
what they find into one transition each (both stores)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sambung.alerts.rules import RULES, RuleContext, evaluate, gap_connections, rule
from sambung.alerts.service import AlertService, retry_delay
from sambung.config import LoadedConfig, load_config
from sambung.plugins import load_plugins
from sambung.store import (
    ConnectionState,
    ConnectionStatus,
    DeadLetterIn,
    IngestRequest,
    RawEvent,
    Store,
)
from sambung.testing.manual_clock import ManualClock

from .conftest import sale


def loaded_config(tmp_path: Path, **alerts: Any) -> LoadedConfig:
    document = {
        "outlets": [
            {
                "id": "kemang",
                "name": "Kemang",
                "connectors": {
                    # Both modes: in the gap report. Its records are `pawoon`-shaped in these
                    # tests only through the store; the rules read the store, not the vendor.
                    "xendit": {
                        "mode": ["webhook", "poll"],
                        "callback_token": "tok-1234567890",
                        "secret_key": "xnd_development_x",
                    },
                    "qasir": {"mode": "poll", "api_key": "qasir-key"},
                },
            }
        ],
        "sinks": {"books": {"type": "jsonl", "path": "out.jsonl"}},
        "alerts": alerts,
    }
    path = tmp_path / "sambung.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return load_config(path, load_plugins(frozenset({"xendit", "qasir"})))


def context(store: Store, loaded: LoadedConfig, clock: ManualClock, **kw: Any) -> RuleContext:
    return RuleContext(store, loaded, clock.now(), **kw)


async def test_gap_connections_are_those_with_webhook_and_poll(tmp_path: Path) -> None:
    assert gap_connections(loaded_config(tmp_path)) == {("kemang", "xendit")}


async def test_needs_reauth_is_found_at_once_and_names_the_fix(
    store: Store, clock: ManualClock, tmp_path: Path
) -> None:
    state = ConnectionState(
        "kemang", "qasir", "poll", ConnectionStatus.NEEDS_REAUTH, last_error="AuthError: 401"
    )
    await store.save_connection_state(state)

    found = await RULES["connection_needs_reauth"](context(store, loaded_config(tmp_path), clock))

    assert list(found) == ["kemang/qasir"]
    assert "sambung connect kemang qasir" in found["kemang/qasir"]


async def test_failing_alerts_only_after_it_failed_for_the_threshold(
    store: Store, clock: ManualClock, tmp_path: Path
) -> None:
    loaded = loaded_config(tmp_path, connection_failing_minutes=5)
    await store.save_connection_state(
        ConnectionState("kemang", "qasir", "poll", ConnectionStatus.FAILING, last_error="HTTP 500")
    )
    seen: dict[str, Any] = {}
    check = RULES["connection_failing"]

    assert await check(context(store, loaded, clock, first_seen=seen)) == {}
    clock.advance(4 * 60)
    assert await check(context(store, loaded, clock, first_seen=seen)) == {}
    clock.advance(61)
    found = await check(context(store, loaded, clock, first_seen=seen))
    assert "has failed for 5 min: HTTP 500" in found["kemang/qasir"]

    await store.save_connection_state(
        ConnectionState("kemang", "qasir", "poll", ConnectionStatus.OK, last_success_at=clock.now())
    )
    assert await check(context(store, loaded, clock, first_seen=seen)) == {}
    assert seen == {}  # a new failure counts from when it starts


async def test_sink_pause_disable_and_old_pending_rows(
    store: Store, clock: ManualClock, tmp_path: Path
) -> None:
    loaded = loaded_config(tmp_path, sink_pending_minutes=10)
    live = {
        "books": {"disabled": None, "paused_until": clock.now() + timedelta(minutes=5)},
        "gone": {"disabled": "HTTP 410 from https://example.test", "paused_until": None},
    }
    ctx = context(store, loaded, clock, sinks=live)
    assert list(await RULES["sink_paused"](ctx)) == ["books"]
    assert list(await RULES["sink_disabled"](ctx)) == ["gone"]

    await store.ingest(IngestRequest(records=[sale()], routes=[["books"]]))
    assert await RULES["sink_pending"](context(store, loaded, clock)) == {}
    clock.advance(10 * 60)
    found = await RULES["sink_pending"](context(store, loaded, clock))
    assert "1 rows pending, the oldest for 10 min" in found["books"]


async def test_dead_letters_above_the_hourly_threshold(
    store: Store, clock: ManualClock, tmp_path: Path
) -> None:
    loaded = loaded_config(tmp_path, dead_letters_per_hour=2)
    for n in range(3):
        letter = DeadLetterIn("ingest", "kemang", "qasir", "InvalidRecord", f"bad row {n}")
        await store.ingest(IngestRequest(dead_letter=letter))
        if n == 1:
            assert await RULES["dead_letters"](context(store, loaded, clock)) == {}

    assert list(await RULES["dead_letters"](context(store, loaded, clock))) == ["dead_letters"]
    clock.advance(3601)
    assert await RULES["dead_letters"](context(store, loaded, clock)) == {}


async def test_webhook_gaps_count_recent_poll_only_records_after_the_grace(
    store: Store, clock: ManualClock, tmp_path: Path
) -> None:
    loaded = loaded_config(tmp_path, gap_grace_minutes=10, gap_window_minutes=60)
    today = {"source_system": "xendit", "business_date": clock.now().date()}
    lost = sale("T1").model_copy(update=today)
    late = sale("T2").model_copy(update=today)
    old = sale("T0").model_copy(  # a first poll's lookback reaching far back: no loss
        update={**today, "business_date": clock.now().date() - timedelta(days=4)}
    )
    await store.ingest(IngestRequest(records=[lost, late, old]))
    check = RULES["webhook_gaps"]

    assert await check(context(store, loaded, clock)) == {}  # in the grace: a webhook may come
    raw = RawEvent("kemang", "xendit", "webhook", "T2", b"{}", clock.now())
    await store.ingest(IngestRequest(raw=raw, records=[late]))
    clock.advance(11 * 60)
    found = await check(context(store, loaded, clock))
    assert "1 of 2 records" in found["kemang/xendit"]
    assert f"{clock.now().date()}: 1" in found["kemang/xendit"]
    clock.advance(60 * 60)  # out of the window: the loss is history, the alert recovers
    assert await check(context(store, loaded, clock)) == {}


async def test_a_failing_rule_is_left_out_so_its_alerts_stay_open(
    store: Store, clock: ManualClock, tmp_path: Path
) -> None:
    async def broken(ctx: RuleContext) -> dict[str, str]:
        raise RuntimeError("cannot tell")

    async def fine(ctx: RuleContext) -> dict[str, str]:
        return {"x": "holds"}

    ran, found = await evaluate(
        context(store, loaded_config(tmp_path), clock), {"broken": broken, "fine": fine}
    )

    assert ran == ["fine"]
    assert [(c.rule, c.subject, c.message) for c in found] == [("fine", "x", "holds")]


def test_a_rule_name_is_registered_once() -> None:
    with pytest.raises(ValueError, match="already registered"):
        rule("sink_paused")(RULES["sink_paused"])


def test_sends_are_retried_ever_later_up_to_ten_minutes() -> None:
    assert [retry_delay(n) for n in (1, 2, 3)] == [5.0, 10.0, 20.0]
    assert retry_delay(30) == 600.0


async def test_the_service_fires_once_across_three_checks_and_recovers_once(
    store: Store, clock: ManualClock, tmp_path: Path
) -> None:
    loaded = loaded_config(tmp_path)
    service = AlertService(store, loaded, load_plugins(frozenset()), clock)
    state = ConnectionState(
        "kemang", "qasir", "poll", ConnectionStatus.NEEDS_REAUTH, last_error="AuthError: 401"
    )
    await store.save_connection_state(state)
    transitions = []
    for _ in range(3):
        transitions += await service.check_once()
        clock.advance(60)
    await store.save_connection_state(
        ConnectionState("kemang", "qasir", "poll", ConnectionStatus.OK, last_success_at=clock.now())
    )
    for _ in range(3):
        transitions += await service.check_once()
        clock.advance(60)

    assert [(t.transition, t.alert.rule) for t in transitions] == [
        ("fired", "connection_needs_reauth"),
        ("recovered", "connection_needs_reauth"),
    ]
