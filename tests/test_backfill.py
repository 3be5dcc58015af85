"""Backfill runner against the fake Qasir API: a window re-polled page by page under its
connection's loop, progress committed with the records, the live cursor never touched.

Time is a `FakeClock`: nothing sleeps.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sambung.config import Connection, LoadedConfig
from sambung.errors import UnknownConnection
from sambung.intake.backfill import BackfillService, add_backfill_routes
from sambung.intake.cursors import CursorService, add_cursor_routes
from sambung.intake.polling import PollLoop, PollService, from_cursor, to_cursor
from sambung.store import BackfillState, ConnectionStatus, IngestRequest, Store
from sambung.testing import outlet
from sambung.testing.fake_vendor import FakeClock
from sambung_qasir import QasirConnector
from sambung_qasir.fake import QasirFake

START = datetime(2026, 11, 26, 5, 0, tzinfo=UTC)
KEY = "qasir-test-key"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START + timedelta(hours=2))


@pytest.fixture
async def vendor(clock: FakeClock) -> AsyncIterator[QasirFake]:
    fake = QasirFake(api_key=KEY, clock=clock, monotonic_clock=clock.monotonic)
    async with fake.serve():
        yield fake


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


class Wired:
    """One polled connection wired as the daemon wires it, with its backfill service."""

    def __init__(self, loop: PollLoop, backfills: BackfillService, cursors: CursorService):
        self.loop = loop
        self.backfills = backfills
        self.cursors = cursors
        self.woken: list[tuple[str, str]] = []


Build = Callable[..., Wired]


@pytest.fixture
def build(store: Store, clock: FakeClock, vendor: QasirFake, session: Any) -> Build:
    def make(**settings: Any) -> Wired:
        block = {
            "mode": "poll",
            "api_key": KEY,
            "base_url": f"{vendor.url}/v1",
            "per_page": 50,
            "lookback": "1h",
            **settings,
        }
        connection = Connection(
            outlet("kemang", "Asia/Jakarta"),
            QasirConnector,
            QasirConnector.Settings.model_validate(block),
        )
        # Configured, not polled: a cursor or a backfill of it is a conflict.
        off = Connection(
            outlet("senopati", "Asia/Jakarta"),
            QasirConnector,
            QasirConnector.Settings.model_validate({**block, "enabled": False}),
        )
        loaded = cast(
            LoadedConfig,
            type("Loaded", (), {"connections": [connection, off], "path": Path("sambung.yaml")}),
        )
        woken: list[tuple[str, str]] = []
        backfills = BackfillService(
            store, lambda: loaded, clock=clock, wake=lambda o, c: woken.append((o, c))
        )
        cursors = CursorService(
            store, lambda: loaded, clock=clock, wake=lambda o, c: woken.append((o, c))
        )
        service = PollService(
            [connection],
            store,
            lambda _o, _k: ("books",),
            clock=clock,
            sleep=clock.sleep,
            backfills=backfills,
        )
        [loop] = service.build(session)
        wired = Wired(loop, backfills, cursors)
        wired.woken = woken
        return wired

    return make


async def test_a_backfill_re_polls_its_window_and_leaves_the_live_cursor(
    vendor: QasirFake, store: Store, build: Build
) -> None:
    vendor.seed(120, START)  # every 30 s from 05:00 to 05:59:30
    wired = build(lookback="90m")
    await wired.loop.run_once()  # the live run saw only the newest half
    live = await store.get_cursor_state("kemang", "qasir")
    assert live is not None
    before = await store.counts()

    # 12:00 WIB is 05:00 UTC: the whole of the seeded hour.
    task = await wired.backfills.request_text(
        "kemang", "qasir", "2026-11-26T12:00:00", "2026-11-26T13:00:00", "operator:ayu"
    )
    assert wired.woken == [("kemang", "qasir")]
    assert task.state is BackfillState.QUEUED and task.since == START
    more = await wired.loop.run_backfills()

    assert not more
    done = await store.get_backfill(task.id)
    assert done is not None and done.state is BackfillState.DONE, done
    assert before["records"] == 60
    assert done.records_new == 60 and done.records_unchanged >= 60
    assert done.records_changed == 0
    assert done.pages >= 3 and done.started_at is not None and done.finished_at is not None
    assert from_cursor(done.position) == max(row.changed_at for row in vendor.rows.values())
    assert await store.get_cursor_state("kemang", "qasir") == live
    # Each record queued once, whichever of the live run or the backfill stored it first.
    records = await store.list_records(limit=1000)
    assert len(records) == 120
    assert len(await store.list_outbox(limit=1000)) == 120


async def test_unchanged_records_queue_nothing(
    vendor: QasirFake, store: Store, build: Build
) -> None:
    vendor.seed(60, START)
    wired = build(lookback="1d")
    await wired.loop.run_once()
    queued = len(await store.list_outbox(limit=1000))

    task = await wired.backfills.request("kemang", "qasir", START, START + timedelta(hours=1), "t")
    await wired.loop.run_backfills()

    done = await store.get_backfill(task.id)
    assert done is not None and done.state is BackfillState.DONE
    assert (done.records_new, done.records_changed) == (0, 0)
    assert done.records_unchanged >= 60
    assert len(await store.list_outbox(limit=1000)) == queued


async def test_a_changed_record_is_counted_and_queued(
    vendor: QasirFake, store: Store, build: Build, clock: FakeClock
) -> None:
    vendor.seed(10, START)
    wired = build(lookback="1d")
    await wired.loop.run_once()
    first = next(iter(vendor.rows))
    vendor.update(first, START + timedelta(minutes=10), status="void")

    task = await wired.backfills.request("kemang", "qasir", START, START + timedelta(hours=1), "t")
    await wired.loop.run_backfills()

    done = await store.get_backfill(task.id)
    assert done is not None and (done.records_new, done.records_changed) == (0, 1)
    assert len(await store.list_outbox(limit=1000)) == 11


async def test_a_backfill_cut_by_the_interval_resumes_from_its_position(
    vendor: QasirFake, store: Store, build: Build, clock: FakeClock
) -> None:
    vendor.seed(200, START)
    wired = build(lookback="1m", interval="1m")
    pages = 0

    def slow_pages(_seen: Any) -> None:
        nonlocal pages
        pages += 1
        clock.advance(25)  # each page takes 25 s: two pages then the 1-minute interval is up

    vendor.after_request = slow_pages
    task = await wired.backfills.request("kemang", "qasir", START, START + timedelta(hours=2), "t")

    assert await wired.loop.run_backfills(), "cut short by the interval"
    cut = await store.get_backfill(task.id)
    assert cut is not None and cut.state is BackfillState.RUNNING and 0 < cut.pages < 4
    while await wired.loop.run_backfills():
        pass
    done = await store.get_backfill(task.id)
    assert done is not None and done.state is BackfillState.DONE
    assert len(await store.list_records(limit=1000)) == 200
    assert done.records_new == 200 and done.records_changed == 0
    assert len(await store.list_outbox(limit=1000)) == 200
    assert await store.get_cursor("kemang", "qasir") is None


async def test_a_failing_vendor_keeps_the_task_for_the_next_cycle(
    vendor: QasirFake, store: Store, build: Build
) -> None:
    vendor.seed(10, START)
    wired = build(retries=0)
    vendor.faults.fail(503, times=1)
    task = await wired.backfills.request("kemang", "qasir", START, START + timedelta(hours=1), "t")

    assert not await wired.loop.run_backfills(), "a failure waits for the interval"
    waiting = await store.get_backfill(task.id)
    assert waiting is not None and waiting.state is BackfillState.RUNNING
    assert waiting.error is not None and "503" in waiting.error
    await wired.loop.run_backfills()
    done = await store.get_backfill(task.id)
    assert done is not None and done.state is BackfillState.DONE and done.records_new == 10


async def test_an_expired_token_keeps_the_task_and_needs_reauth_holds_it(
    vendor: QasirFake, store: Store, build: Build
) -> None:
    vendor.seed(10, START)
    wired = build()
    vendor.faults.fail(401, times=1)
    task = await wired.backfills.request("kemang", "qasir", START, START + timedelta(hours=1), "t")
    await wired.loop.run_backfills()
    waiting = await store.get_backfill(task.id)
    assert waiting is not None and waiting.state is BackfillState.RUNNING and waiting.error
    wired.loop.status = ConnectionStatus.NEEDS_REAUTH
    assert not await wired.loop.run_backfills()
    assert vendor.faults.injected == 1 and len(vendor.requests) == 1, "no request meanwhile"
    wired.loop.status = ConnectionStatus.OK
    await wired.loop.run_backfills()
    done = await store.get_backfill(task.id)
    assert done is not None and done.state is BackfillState.DONE


async def test_a_refused_request_fails_the_task(
    vendor: QasirFake, store: Store, build: Build
) -> None:
    vendor.seed(10, START)
    wired = build()
    vendor.faults.fail(400, times=1)
    task = await wired.backfills.request("kemang", "qasir", START, START + timedelta(hours=1), "t")
    await wired.loop.run_backfills()
    failed = await store.get_backfill(task.id)
    assert failed is not None and failed.state is BackfillState.FAILED and failed.error


async def test_a_cancelled_backfill_stops(vendor: QasirFake, store: Store, build: Build) -> None:
    vendor.seed(10, START)
    wired = build()
    task = await wired.backfills.request("kemang", "qasir", START, START + timedelta(hours=1), "t")
    await wired.backfills.cancel(task.id)
    await wired.loop.run_backfills()
    cancelled = await store.get_backfill(task.id)
    assert cancelled is not None and cancelled.state is BackfillState.CANCELLED
    assert cancelled.pages == 0


async def test_requests_name_what_is_wrong(store: Store, build: Build, clock: FakeClock) -> None:
    wired = build()
    with pytest.raises(UnknownConnection):
        await wired.backfills.request_text("kemang", "moka", "2026-11-20", None, "t")
    with pytest.raises(ValueError, match="after since"):
        await wired.backfills.request_text("kemang", "qasir", "2026-11-22", "2026-11-20", "t")
    with pytest.raises(ValueError, match="future"):
        await wired.backfills.request(
            "kemang", "qasir", clock.now() + timedelta(days=1), clock.now() + timedelta(days=2), "t"
        )
    with pytest.raises(ValueError):
        await wired.backfills.request_text("kemang", "qasir", "last tuesday", None, "t")
    # A date is the outlet's day: from its start, `until` to its end (WIB is UTC+7).
    task = await wired.backfills.request_text("kemang", "qasir", "2026-11-20", "2026-11-21", "t")
    assert task.since == datetime(2026, 11, 19, 17, tzinfo=UTC)
    assert task.until == datetime(2026, 11, 21, 17, tzinfo=UTC)


async def test_a_cursor_set_is_the_next_run_s_start(
    vendor: QasirFake, store: Store, build: Build, clock: FakeClock
) -> None:
    vendor.seed(120, START)
    wired = build(lookback="1d", overlap="0s")
    await wired.loop.run_once()
    rewound = START + timedelta(minutes=20)
    change = await wired.cursors.set("kemang", "qasir", rewound.isoformat(), "ayu", "re-read")
    assert change.actor == "operator:ayu" and change.after == to_cursor(rewound)
    assert wired.woken == [("kemang", "qasir")]
    vendor.requests.clear()

    await wired.loop.run_once()

    asked = datetime.fromisoformat(vendor.requests[0].query["from_date"])
    assert asked == rewound
    view = await wired.cursors.show("kemang", "qasir")
    assert view.state is not None and view.state.moved_by is not None
    assert view.state.moved_by.startswith("poll:")
    assert [c.actor for c in view.history] == ["operator:ayu"]


async def test_a_cursor_set_while_a_page_is_in_flight_stands(
    vendor: QasirFake, store: Store, build: Build, clock: FakeClock
) -> None:
    vendor.seed(120, START)
    wired = build(lookback="1d", overlap="0s")
    rewound = START + timedelta(minutes=5)
    ingest = store.ingest

    async def operator_sets_first(request: IngestRequest) -> Any:
        # The run read the cursor, fetched its first page; the operator's set lands first.
        if request.cursor is not None and not await store.cursor_changes("kemang", "qasir"):
            await wired.cursors.set("kemang", "qasir", rewound.isoformat(), "ayu")
        return await ingest(request)

    store.ingest = operator_sets_first  # type: ignore[method-assign]
    result = await wired.loop.run_once()

    assert result.records == 120
    assert await store.get_cursor("kemang", "qasir") == to_cursor(rewound)
    assert len(await store.list_records(limit=1000)) == 120
    store.ingest = ingest  # type: ignore[method-assign]
    vendor.requests.clear()
    await wired.loop.run_once()
    assert datetime.fromisoformat(vendor.requests[0].query["from_date"]) == rewound


async def test_cursor_requests_name_what_is_wrong(build: Build, clock: FakeClock) -> None:
    wired = build()
    with pytest.raises(UnknownConnection):
        await wired.cursors.show("kemang", "moka")
    with pytest.raises(ValueError, match="future"):
        await wired.cursors.set(
            "kemang", "qasir", (clock.now() + timedelta(hours=1)).isoformat(), "a"
        )
    reset = await wired.cursors.reset("kemang", "qasir", "ayu")
    assert (reset.after, reset.actor) == (None, "operator:ayu")


@pytest.fixture
async def api(build: Build) -> AsyncIterator[tuple[TestClient[Any, Any], Wired]]:
    wired = build()
    app = web.Application()
    add_backfill_routes(app, wired.backfills)
    add_cursor_routes(app, wired.cursors)
    async with TestClient(TestServer(app)) as client:
        yield client, wired


async def test_the_backfill_api(api: tuple[TestClient[Any, Any], Wired]) -> None:
    client, wired = api
    url = "/api/v1/connections/kemang/qasir/backfill"
    answer = await client.post(url, json={"since": "2026-11-26", "requested_by": "ayu"})
    assert answer.status == 202
    task = await answer.json()
    assert (task["state"], task["requested_by"], task["pages"]) == ("queued", "ayu", 0)
    assert task["since"] == "2026-11-25T17:00:00+00:00"
    assert wired.woken == [("kemang", "qasir")], "the loop is told at once"

    listed = await (await client.get("/api/v1/backfills?active=true")).json()
    assert [t["id"] for t in listed["backfills"]] == [task["id"]]
    shown = await client.get(f"/api/v1/backfills/{task['id']}")
    assert (await shown.json())["id"] == task["id"]
    cancelled = await client.delete(f"/api/v1/backfills/{task['id']}")
    assert (await cancelled.json())["state"] == "cancelled"

    missing = await client.get("/api/v1/backfills/999")
    assert missing.status == 404
    unknown = await client.post("/api/v1/connections/kemang/moka/backfill", json={"since": "x"})
    assert unknown.status == 404
    assert (await unknown.json())["error"] == "not_found"
    off = await client.post("/api/v1/connections/senopati/qasir/backfill", json={"since": "x"})
    assert off.status == 409
    assert "not polled" in (await off.json())["message"]
    bad = await client.post(url, json={"since": "yesterday-ish"})
    assert bad.status == 400 and (await bad.json())["error"] == "invalid_request"
    typo = await client.post(url, json={"snce": "2026-11-26"})
    assert typo.status == 400


async def test_the_cursor_api(api: tuple[TestClient[Any, Any], Wired]) -> None:
    client, wired = api
    url = "/api/v1/connections/kemang/qasir/cursor"
    empty = await (await client.get(url)).json()
    assert (empty["value"], empty["history"]) == (None, [])

    answer = await client.put(url, json={"value": "2026-11-26T12:30:00", "actor": "ayu"})
    assert answer.status == 200
    shown = await answer.json()
    assert shown["value"] == "2026-11-26T05:30:00+00:00"  # WIB read as the outlet's time
    assert shown["moved_by"] == "operator:ayu" and shown["generation"] == 1
    assert shown["change"]["before"] is None
    assert wired.woken == [("kemang", "qasir")]

    reset = await (await client.delete(url, json={"actor": "ayu", "reason": "resync"})).json()
    assert reset["value"] is None and reset["change"]["reason"] == "resync"
    assert [c["after"] for c in reset["history"]] == [None, "2026-11-26T05:30:00+00:00"]
    listed = await (await client.get("/api/v1/cursors")).json()
    assert [(c["outlet"], c["value"]) for c in listed["cursors"]] == [("kemang", None)]

    assert (await client.get("/api/v1/connections/kemang/moka/cursor")).status == 404
    assert (
        await client.put("/api/v1/connections/senopati/qasir/cursor", json={"value": "2026-11-26"})
    ).status == 409
    assert (await client.put(url, json={"value": "soon"})).status == 400
    assert (await client.put(url, json={})).status == 400
