"""`GET /api/v1/gaps` and `GET /api/v1/alerts` over a real store (both backends)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sambung.alerts.report import add_alert_routes, status_parts
from sambung.store import AlertCondition, IngestRequest, RawEvent, Store
from sambung.testing.manual_clock import ManualClock

from .conftest import sale
from .test_alert_rules import loaded_config


async def get(app: web.Application, path: str) -> tuple[int, Any]:
    async with TestClient(TestServer(app)) as client:
        answer = await client.get(path)
        return answer.status, await answer.json()


async def test_gaps_by_outlet_and_day(store: Store, clock: ManualClock, tmp_path: Path) -> None:
    loaded = loaded_config(tmp_path)
    polled = [sale(f"T{n}").model_copy(update={"source_system": "xendit"}) for n in range(3)]
    await store.ingest(IngestRequest(records=polled))
    raw = RawEvent("kemang", "xendit", "webhook", "T0", b"{}", clock.now())
    await store.ingest(IngestRequest(raw=raw, records=polled[:1]))
    app = web.Application()
    add_alert_routes(app, store, lambda: loaded, clock)

    status, body = await get(app, "/api/v1/gaps?outlet=kemang&since=2026-11-26")
    assert status == 200
    assert body == {
        "gaps": [
            {
                "outlet": "kemang",
                "connector": "xendit",
                "business_date": "2026-11-26",
                "poll_only": 2,
                "total": 3,
            }
        ]
    }
    assert (await get(app, "/api/v1/gaps?since=2026-11-27"))[1] == {"gaps": []}
    status, body = await get(app, "/api/v1/gaps?since=yesterday")
    assert status == 400
    assert body["problems"][0]["path"] == "since"


async def test_alerts_open_and_recent(store: Store, clock: ManualClock, tmp_path: Path) -> None:
    loaded = loaded_config(tmp_path)
    rules = ["sink_paused"]
    await store.apply_alert_conditions(
        rules, [AlertCondition("sink_paused", "books", "paused")], channels=[], now=clock.now()
    )
    clock.advance(60)
    await store.apply_alert_conditions(rules, [], channels=[], now=clock.now())
    await store.apply_alert_conditions(
        rules, [AlertCondition("sink_paused", "ledger", "paused")], channels=[], now=clock.now()
    )
    app = web.Application()
    add_alert_routes(app, store, lambda: loaded, clock)

    _, body = await get(app, "/api/v1/alerts")
    assert [(a["subject"], a["state"]) for a in body["alerts"]] == [
        ("ledger", "open"),
        ("books", "recovered"),
    ]
    _, body = await get(app, "/api/v1/alerts?open=true")
    assert [a["subject"] for a in body["alerts"]] == ["ledger"]
    status, _ = await get(app, "/api/v1/alerts?limit=0")
    assert status == 400
    parts = await status_parts(store, loaded, clock.now())
    assert [a["subject"] for a in parts["alerts"]] == ["ledger"]
    assert parts["gaps"] == []


QUERY = st.dictionaries(
    st.sampled_from(["outlet", "since", "open", "limit", "x", "since[]"]),
    st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=30),
    max_size=4,
)


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(query=QUERY)
async def test_any_query_is_answered_200_or_400(
    store: Store, clock: ManualClock, tmp_path: Path, query: dict[str, str]
) -> None:
    app = web.Application()
    add_alert_routes(app, store, lambda: loaded_config(tmp_path), clock)
    async with TestClient(TestServer(app)) as client:
        for path in ("/api/v1/gaps", "/api/v1/alerts"):
            answer = await client.get(path, params=query)
            assert answer.status in (200, 400), (path, query, await answer.text())
            await answer.json()
