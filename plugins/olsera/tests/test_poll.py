"""Olsera poll mode against its fake: token refresh, unsorted pages, empty ranges."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from sambung.plugin import Transaction
from sambung.testing import poll_loops
from sambung.testing.core import ConnectionStatus, PollLoop, Store, from_cursor
from sambung.testing.fake_vendor import FakeClock, Seen
from sambung_olsera import OlseraConnector
from sambung_olsera.fake import OlseraFake

START = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)
POLL = {"mode": "poll", "app_id": "olsera-app", "secret_key": "olsera-secret"}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START + timedelta(hours=3))


@pytest.fixture
async def vendor(clock: FakeClock) -> AsyncIterator[OlseraFake]:
    fake = OlseraFake(clock=clock, page_size=20)
    async with fake.serve():
        yield fake


@pytest.fixture
async def loop(vendor: OlseraFake, store: Store, clock: FakeClock) -> AsyncIterator[PollLoop]:
    async with aiohttp.ClientSession() as session:
        [built] = poll_loops(
            OlseraConnector, {**POLL, "base_url": vendor.url}, store, session, clock=clock
        )
        yield built


async def test_newest_first_pages_move_the_cursor_only_at_the_end(
    vendor: OlseraFake, store: Store, loop: PollLoop
) -> None:
    vendor.seed(50, START)
    result = await loop.run_once()

    assert result.status is ConnectionStatus.OK
    assert len(await store.list_outbox(limit=1000)) == 50
    newest = max(row.changed_at for row in vendor.rows.values())
    assert from_cursor(await store.get_cursor("kemang", "olsera")) == newest


async def test_an_expired_token_is_refreshed_with_the_refresh_token(
    vendor: OlseraFake, store: Store, loop: PollLoop
) -> None:
    vendor.seed(50, START)
    pages = 0

    def expire_after_first_page(seen: Seen) -> None:
        nonlocal pages
        if seen.path.endswith("closeorder"):
            pages += 1
            if pages == 1:
                vendor.expire_tokens()

    vendor.after_request = expire_after_first_page
    result = await loop.run_once()

    assert result.status is ConnectionStatus.OK
    assert (vendor.secret_grants, vendor.refresh_grants) == (1, 1)
    assert len(await store.list_outbox(limit=1000)) == 50


async def test_orders_are_stored_with_their_lines_at_the_till_time(
    vendor: OlseraFake, store: Store, loop: PollLoop
) -> None:
    vendor.seed(30, START)
    result = await loop.run_once()

    assert result.status is ConnectionStatus.OK
    stored = [Transaction.model_validate_json(r.payload) for r in await store.list_records()]
    assert len(stored) == 30
    details = [r for r in vendor.data_requests() if r.path.endswith("/detail")]
    assert len(details) == 30
    for t in stored:
        n = int(t.external_id) - 880_000
        assert t.items and t.tax > 0
        assert t.subtotal - t.discount + t.service_charge + t.tax + t.rounding == t.total
        assert t.occurred_at == START + timedelta(seconds=30 * (n - 1))
        assert t.business_date == t.occurred_at.astimezone(ZoneInfo("Asia/Jakarta")).date()


async def test_a_failed_detail_retries_the_order_and_never_stores_it_without_lines(
    vendor: OlseraFake, store: Store, loop: PollLoop
) -> None:
    vendor.seed(5, START)
    vendor.faults.fail(500, times=1, path="/detail")

    result = await loop.run_once()

    assert result.status is ConnectionStatus.OK
    stored = [Transaction.model_validate_json(r.payload) for r in await store.list_records()]
    assert len(stored) == 5 and all(t.items for t in stored)


async def test_a_detail_failing_all_run_leaves_the_cursor_and_stores_nothing(
    vendor: OlseraFake, store: Store, loop: PollLoop
) -> None:
    vendor.seed(5, START)
    vendor.faults.fail(500, times=100, path="/detail")

    result = await loop.run_once()

    assert result.status is ConnectionStatus.FAILING
    assert await store.list_records() == []
    assert await store.get_cursor("kemang", "olsera") is None


async def test_a_day_with_no_orders_is_an_empty_page_and_stays_ok(
    vendor: OlseraFake, store: Store, loop: PollLoop
) -> None:
    result = await loop.run_once()
    again = await loop.run_once()

    assert result.status is ConnectionStatus.OK and again.status is ConnectionStatus.OK
    assert [r.status for r in vendor.data_requests()] == [404, 404]
    assert await store.list_records() == []
