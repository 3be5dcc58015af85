"""The poll runner against the fake Qasir API: pages, cursors, overlap, faults, auth, budgets.

Time is a `FakeClock`: backoff and `Retry-After` waits are recorded, never slept.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest
from sambung.config import Connection
from sambung.intake.polling import PollLoop, PollService, from_cursor
from sambung.store import ConnectionStatus, DeadLetterQuery, IngestRequest, Store
from sambung.testing import outlet
from sambung.testing.fake_vendor import FakeClock, Seen
from sambung_qasir import QasirConnector
from sambung_qasir.fake import QasirFake

START = datetime(2026, 11, 26, 5, 0, tzinfo=UTC)
KEY = "qasir-test-key"


@pytest.fixture(autouse=True)
def cursors_never_go_back(store: Store) -> Iterator[dict[str, list[str]]]:
    """Every cursor the runner commits, per outlet, checked after each test: never backwards."""
    committed: dict[str, list[str]] = {}
    ingest = store.ingest

    async def spy(request: IngestRequest) -> Any:
        if request.cursor is not None:
            committed.setdefault(request.cursor.outlet, []).append(request.cursor.value)
        return await ingest(request)

    store.ingest = spy  # type: ignore[method-assign]
    yield committed
    for outlet_id, values in committed.items():
        instants = [from_cursor(value) for value in values]
        assert instants == sorted(instants), f"{outlet_id}: the cursor went back: {values}"
        assert len(set(instants)) == len(instants), f"{outlet_id}: committed without moving"


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


Build = Callable[..., list[PollLoop]]


@pytest.fixture
def build(store: Store, clock: FakeClock, vendor: QasirFake, session: Any) -> Build:
    """Poll loops for `outlets` sharing one account (one Qasir key), wired as the daemon does."""

    def make(outlets: int = 1, timezone: str = "Asia/Jakarta", **settings: Any) -> list[PollLoop]:
        block = {
            "mode": "poll",
            "api_key": KEY,
            "base_url": f"{vendor.url}/v1",
            "per_page": 50,
            "lookback": "1d",
            **settings,
        }
        connections = [
            Connection(
                outlet(f"outlet-{n}" if outlets > 1 else "kemang", timezone),
                QasirConnector,
                QasirConnector.Settings.model_validate(block),
            )
            for n in range(outlets)
        ]
        service = PollService(
            connections, store, lambda _o, _k: ("books",), clock=clock, sleep=clock.sleep
        )
        return service.build(session)

    return make


async def stored(store: Store) -> dict[str, int]:
    """Outbox rows per external id (every record must have exactly one per content change)."""
    records = {r.id: r.external_id for r in await store.list_records(limit=100_000)}
    rows: dict[str, int] = {}
    for row in await store.list_outbox(limit=100_000):
        rows[records[row.record_id]] = rows.get(records[row.record_id], 0) + 1
    return rows


async def test_first_run_commits_every_page_with_its_cursor(
    vendor: QasirFake, store: Store, build: Build
) -> None:
    vendor.seed(120, START)
    [loop] = build()

    result = await loop.run_once()

    assert (result.status, result.records) == (ConnectionStatus.OK, 120)
    assert result.pages == 3
    outbox = await stored(store)
    assert len(outbox) == 120 and set(outbox.values()) == {1}
    newest = max(row.changed_at for row in vendor.rows.values())
    assert from_cursor(await store.get_cursor("kemang", "qasir")) == newest
    [state] = await store.list_connection_states()
    assert (state.state, state.records_fetched) == (ConnectionStatus.OK, 120)


async def test_the_overlap_refetches_without_duplicate_outbox_rows(
    vendor: QasirFake, store: Store, build: Build, clock: FakeClock
) -> None:
    vendor.seed(30, START)
    [loop] = build()
    await loop.run_once()
    cursor = await store.get_cursor("kemang", "qasir")

    clock.advance(300)
    second = await loop.run_once()

    assert second.status is ConnectionStatus.OK
    assert second.records > 0, "the overlap re-reads the newest rows"
    assert set((await stored(store)).values()) == {1}
    assert await store.get_cursor("kemang", "qasir") == cursor


async def test_a_late_update_and_a_row_in_the_cursor_second_are_not_skipped(
    vendor: QasirFake, store: Store, build: Build, clock: FakeClock
) -> None:
    vendor.seed(10, START)
    [loop] = build()
    await loop.run_once()
    newest = max(row.changed_at for row in vendor.rows.values())

    # A sale rung up in the very second of the cursor, and an old sale voided a minute later
    # but written with a till time before the cursor (the overlap covers it).
    vendor.sale(999, newest)
    vendor.update("QSR-0000002", newest - timedelta(seconds=60), status="void")
    clock.advance(300)
    await loop.run_once()

    outbox = await stored(store)
    assert outbox["QSR-0000999"] == 1
    assert outbox["QSR-0000002"] == 2, "the void is a new version: one more delivery"
    assert sum(outbox.values()) == 12


async def test_a_row_updated_between_two_pages_is_neither_lost_nor_duplicated(
    vendor: QasirFake, store: Store, build: Build
) -> None:
    vendor.seed(120, START)
    [loop] = build()
    first_page_done = False

    def update_after_first_page(seen: Seen) -> None:
        nonlocal first_page_done
        if not first_page_done and seen.path.endswith("/transactions"):
            first_page_done = True
            # The first row changes: it moves to the end of the change order.
            vendor.update("QSR-0000001", START + timedelta(hours=1, seconds=1), total=99900)

    vendor.after_request = update_after_first_page
    await loop.run_once()

    outbox = await stored(store)
    assert len(outbox) == 120, f"lost: {sorted(set(vendor.rows) - set(outbox))[:5]}"
    assert outbox["QSR-0000001"] == 2
    assert sum(outbox.values()) == 121


async def test_rows_sharing_a_second_across_a_page_boundary(
    vendor: QasirFake, store: Store, build: Build
) -> None:
    same = START + timedelta(minutes=5)
    for n in range(1, 8):  # seven rows in one second, pages of three
        vendor.sale(n, same)
    vendor.sale(8, same + timedelta(seconds=1))
    [loop] = build(per_page=3)

    result = await loop.run_once()

    assert result.status is ConnectionStatus.OK
    outbox = await stored(store)
    assert len(outbox) == 8 and set(outbox.values()) == {1}


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"Rate-Limit-Reset": "12"}, 12.0),
        ({}, None),
    ],
)
async def test_429_is_retried_honouring_retry_after(
    vendor: QasirFake,
    store: Store,
    build: Build,
    clock: FakeClock,
    headers: dict[str, str],
    expected: float | None,
) -> None:
    vendor.seed(60, START)
    [loop] = build()
    clock.slept.clear()
    vendor.faults.fail(429, headers=headers)

    result = await loop.run_once()

    assert result.status is ConnectionStatus.OK
    assert len(await stored(store)) == 60
    waits = [s for s in clock.slept if s > 0]
    if expected is not None:
        assert waits == [expected]
    else:
        assert len(waits) == 1 and 0 < waits[0] <= 1.0, "first backoff is jittered, at most 1 s"


async def test_retry_after_as_an_http_date(
    vendor: QasirFake, store: Store, build: Build, clock: FakeClock
) -> None:
    vendor.seed(5, START)
    [loop] = build()
    clock.slept.clear()
    when = format_datetime(clock.now() + timedelta(seconds=30), usegmt=True)
    vendor.faults.fail(429, headers={"Retry-After": when})

    await loop.run_once()

    assert [s for s in clock.slept if s > 0] == [30.0]


async def test_500s_mid_run_are_retried_and_nothing_is_lost(
    vendor: QasirFake, store: Store, build: Build, clock: FakeClock
) -> None:
    vendor.seed(120, START)
    [loop] = build()
    served = 0

    def break_after_two_pages(seen: Seen) -> None:
        nonlocal served
        served += 1
        if served == 2:
            vendor.faults.fail(500, times=2)

    vendor.after_request = break_after_two_pages
    result = await loop.run_once()

    assert result.status is ConnectionStatus.OK
    outbox = await stored(store)
    assert len(outbox) == 120 and set(outbox.values()) == {1}


async def test_when_retries_run_out_the_run_ends_and_the_next_one_resumes(
    vendor: QasirFake, store: Store, build: Build, clock: FakeClock, capsys: Any
) -> None:
    vendor.seed(120, START)
    [loop] = build(retries=2)
    served = 0
    cursors: list[str | None] = []

    def break_after_one_page(seen: Seen) -> None:
        nonlocal served
        served += 1
        if served == 1:
            vendor.faults.fail(503, times=6)

    vendor.after_request = break_after_one_page
    failed = await loop.run_once()
    cursors.append(await store.get_cursor("kemang", "qasir"))
    again = await loop.run_once()  # three more 503s: still failing
    cursors.append(await store.get_cursor("kemang", "qasir"))
    clock.advance(300)
    recovered = await loop.run_once()
    cursors.append(await store.get_cursor("kemang", "qasir"))

    assert failed.status is ConnectionStatus.FAILING and "503" in (failed.error or "")
    assert failed.records == 50, "the first page was committed before the failures"
    assert again.status is ConnectionStatus.FAILING
    assert recovered.status is ConnectionStatus.OK
    assert cursors[0] == cursors[1] and cursors[0] is not None
    assert [from_cursor(c) for c in cursors] == sorted(from_cursor(c) for c in cursors)
    outbox = await stored(store)
    assert len(outbox) == 120 and set(outbox.values()) == {1}
    [state] = await store.list_connection_states()
    assert state.state is ConnectionStatus.OK and state.last_error and "503" in state.last_error
    logged = capsys.readouterr().out
    assert logged.count("poll.failing") == 1, "logged once when it starts failing"
    assert logged.count("poll.recovered") == 1, "and once when it recovers"


async def test_a_response_slower_than_the_timeout_is_retried(
    vendor: QasirFake, store: Store, build: Build
) -> None:
    vendor.seed(10, START)
    [loop] = build(timeout=0.2)
    vendor.faults.slow(2.0)

    result = await loop.run_once()

    assert result.status is ConnectionStatus.OK
    assert len(await stored(store)) == 10


async def test_a_permanent_401_stops_requests_until_the_key_is_fixed(
    vendor: QasirFake, store: Store, build: Build, clock: FakeClock
) -> None:
    vendor.seed(10, START)
    [loop] = build()
    vendor.api_keys = {"the-new-key"}
    notified: list[Any] = []
    loop.notify_reauth = notified.append

    first = await loop.run_once()
    requests = len(vendor.requests)
    clock.advance(300)
    second = await loop.run_once()

    assert first.status is ConnectionStatus.NEEDS_REAUTH
    assert second.skipped and len(vendor.requests) == requests, "no request while refused"
    assert len(notified) == 1
    [state] = await store.list_connection_states()
    assert state.state is ConnectionStatus.NEEDS_REAUTH

    [fixed] = build(api_key="the-new-key")
    loop.replace_connector(fixed.connector)
    third = await loop.run_once()

    assert third.status is ConnectionStatus.OK
    assert len(await stored(store)) == 10


async def test_needs_reauth_survives_a_restart_with_the_same_key(
    vendor: QasirFake, store: Store, build: Build
) -> None:
    vendor.api_keys = {"another"}
    [loop] = build()
    await loop.run_once()
    requests = len(vendor.requests)

    [restarted] = build()
    result = await restarted.run_once()

    assert result.skipped and len(vendor.requests) == requests


async def test_a_4xx_marks_the_connection_failing_with_the_vendors_message(
    vendor: QasirFake, store: Store, build: Build
) -> None:
    vendor.seed(3, START)
    [loop] = build()
    vendor.faults.fail(422, body='{"message": "from_date harus diisi"}')

    result = await loop.run_once()

    assert result.status is ConnectionStatus.FAILING
    assert "from_date harus diisi" in (result.error or "")
    assert len(vendor.data_requests()) == 1, "a 4xx is not retried"


async def test_fifty_loops_sharing_one_account_stay_within_its_budget(
    vendor: QasirFake, store: Store, build: Build
) -> None:
    vendor.seed(120, START)
    loops = build(outlets=50, per_page=40)
    rate, cap = QasirConnector.rate_limit, QasirConnector.max_in_flight

    import asyncio

    results = await asyncio.gather(*(loop.run_once() for loop in loops))

    assert all(r.status is ConnectionStatus.OK for r in results)
    times = sorted(seen.at for seen in vendor.data_requests())
    assert len(times) == 50 * 4  # three full pages, then an empty one
    busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert busiest <= rate + rate, f"{busiest} calls in one second; budget {rate}/s"
    assert vendor.max_in_flight <= cap


async def test_makassar_outlet_reads_zone_less_times_in_wita(
    clock: FakeClock, store: Store, session: Any
) -> None:
    fake = QasirFake(api_key=KEY, timezone="Asia/Makassar", clock=clock)
    # 00:20 WITA on the 27th is 16:20 UTC on the 26th.
    fake.sale(1, datetime(2026, 11, 26, 16, 20, tzinfo=UTC))
    async with fake.serve() as url:
        connection = Connection(
            outlet("panakkukang", "Asia/Makassar"),
            QasirConnector,
            QasirConnector.Settings.model_validate(
                {"mode": "poll", "api_key": KEY, "base_url": f"{url}/v1"}
            ),
        )
        [loop] = PollService(
            [connection], store, lambda _o, _k: (), clock=clock, sleep=clock.sleep
        ).build(session)
        await loop.run_once()
    [record] = await store.list_records()
    payload = json.loads(record.payload)
    assert payload["occurred_at"] == "2026-11-26T16:20:00Z"
    assert date.fromisoformat(payload["business_date"]) == date(2026, 11, 27)


async def test_a_retry_after_longer_than_a_run_waits_ends_the_run_and_delays_the_next(
    vendor: QasirFake, store: Store, build: Build, clock: FakeClock
) -> None:
    vendor.seed(5, START)
    [loop] = build()
    clock.slept.clear()
    vendor.faults.fail(429, headers={"Retry-After": "3600"})

    result = await loop.run_once()

    assert result.status is ConnectionStatus.FAILING
    assert clock.slept == [], "no hour-long wait inside the run"
    assert await store.get_cursor("kemang", "qasir") is None
    assert loop._next_delay() >= 3600 - 1


async def test_an_unmappable_row_goes_to_the_dead_letter_queue_and_the_run_goes_on(
    vendor: QasirFake, store: Store, build: Build
) -> None:
    vendor.seed(5, START)
    vendor.update("QSR-0000003", START + timedelta(minutes=3), total="dua ribu")
    [loop] = build()

    result = await loop.run_once()

    assert result.status is ConnectionStatus.OK
    assert len(await stored(store)) == 4
    [dead] = await store.find_dead_letters(DeadLetterQuery())
    assert (dead.connector, dead.field) == ("qasir", "total")
    assert dead.payload is not None and "QSR-0000003" in dead.payload


async def test_every_run_is_counted_in_the_seed_metrics(
    vendor: QasirFake, store: Store, build: Build
) -> None:
    from sambung import metrics

    def sample(name: str, **labels: str) -> float:
        return metrics.REGISTRY.get_sample_value(name, labels) or 0.0

    vendor.seed(5, START)
    [loop] = build()
    ok = sample("integration_sync_total", source_system="qasir", status="success")
    failed = sample("integration_sync_total", source_system="qasir", status="failure")
    runs = sample("integration_sync_duration_seconds_count", source_system="qasir")

    await loop.run_once()
    vendor.faults.fail(422)
    await loop.run_once()

    assert sample("integration_sync_total", source_system="qasir", status="success") == ok + 1
    assert sample("integration_sync_total", source_system="qasir", status="failure") == failed + 1
    assert sample("integration_sync_duration_seconds_count", source_system="qasir") == runs + 2


async def test_the_loop_polls_at_start_up_then_every_interval_with_jitter(
    vendor: QasirFake, build: Build, clock: FakeClock
) -> None:
    import asyncio

    vendor.seed(3, START)
    [loop] = build(interval="5m")
    task = asyncio.create_task(loop.run_forever())
    while len(vendor.data_requests()) < 4:
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

    first, *waits = clock.slept
    assert 0 <= first <= 5.0, "the first poll comes at start-up (spread over a few seconds)"
    assert len(waits) >= 3
    assert all(270 <= wait <= 330 for wait in waits[:3]), waits


async def test_new_credentials_wake_a_loop_that_waits_in_needs_reauth(
    vendor: QasirFake, build: Build, store: Store
) -> None:
    import asyncio

    vendor.seed(3, START)
    vendor.api_keys = {"the-new-key"}
    [loop] = build(interval="10m")
    loop.sleep = lambda seconds: asyncio.sleep(0 if seconds < 10 else 3600)  # type: ignore[assignment, method-assign]
    task = asyncio.create_task(loop.run_forever())
    while loop.status is not ConnectionStatus.NEEDS_REAUTH:
        await asyncio.sleep(0.01)

    [fixed] = build(api_key="the-new-key")
    loop.replace_connector(fixed.connector)
    while loop.status is not ConnectionStatus.OK:
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

    assert len(await stored(store)) == 3
