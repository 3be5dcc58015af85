"""Moka poll mode against its fake: conformance, `next_url` paging, a refused access token
refreshed once (the refresh token rotates), refunds, and tokens that cannot be refreshed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from sambung.plugin import Transaction
from sambung.testing import poll_loops
from sambung.testing.conformance import PollConnectorConformance
from sambung.testing.core import ConnectionStatus, PollLoop, Store
from sambung.testing.fake_vendor import FakeClock, Seen
from sambung_moka import MokaConnector
from sambung_moka.fake import MokaFake

START = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)
POLL = {
    "mode": "poll",
    "access_token": "moka-access",
    "refresh_token": "moka-refresh",
    "client_id": "moka-client",
    "client_secret": "moka-client-secret",
    "outlet_id": "41230",
    "per_page": 20,
}


class TestMokaPollConformance(PollConnectorConformance):
    connector = MokaConnector

    def fake(self, clock: FakeClock) -> MokaFake:
        return MokaFake(clock=clock)

    def settings(self, url: str) -> dict[str, Any]:
        return {**POLL, "base_url": url}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START + timedelta(hours=3))


@pytest.fixture
async def vendor(clock: FakeClock) -> AsyncIterator[MokaFake]:
    fake = MokaFake(clock=clock)
    async with fake.serve():
        yield fake


@pytest.fixture
async def loop(vendor: MokaFake, store: Store, clock: FakeClock) -> AsyncIterator[PollLoop]:
    async with aiohttp.ClientSession() as session:
        [built] = poll_loops(
            MokaConnector, {**POLL, "base_url": vendor.url}, store, session, clock=clock
        )
        yield built


async def test_follows_next_url_until_completed(
    vendor: MokaFake, store: Store, loop: PollLoop
) -> None:
    vendor.seed(70, START)

    result = await loop.run_once()

    assert (result.status, result.records, result.pages) == (ConnectionStatus.OK, 70, 4)
    assert len(await store.list_outbox(limit=1000)) == 70


async def test_an_access_token_revoked_mid_run_is_refreshed_once(
    vendor: MokaFake, store: Store, loop: PollLoop
) -> None:
    vendor.seed(70, START)
    pages = 0

    def revoke_after_first_page(seen: Seen) -> None:
        nonlocal pages
        pages += 1
        if pages == 1:
            vendor.expire_tokens()

    vendor.after_request = revoke_after_first_page
    result = await loop.run_once()

    assert result.status is ConnectionStatus.OK
    assert vendor.tokens_issued == 1
    assert "moka-refresh" not in vendor.refresh_tokens, "the refresh token rotated"
    assert len(await store.list_outbox(limit=1000)) == 70


async def test_a_refund_adds_a_refund_record_and_keeps_the_sale(
    vendor: MokaFake, store: Store, loop: PollLoop, clock: FakeClock
) -> None:
    vendor.seed(3, START)
    await loop.run_once()
    vendor.refund("700002", START + timedelta(hours=2))
    clock.advance(300)

    await loop.run_once()

    ids = sorted(r.external_id for r in await store.list_records())
    assert ids == ["700001", "700002", "700002:refund", "700003"]
    assert len(await store.list_outbox(limit=1000)) == 4


async def test_no_refresh_possible_means_needs_reauth(
    vendor: MokaFake, store: Store, loop: PollLoop
) -> None:
    vendor.seed(3, START)
    vendor.expire_tokens()
    vendor.refresh_tokens.clear()

    result = await loop.run_once()

    assert result.status is ConnectionStatus.NEEDS_REAUTH
    assert (await loop.run_once()).skipped


@pytest.mark.parametrize("time_format", ["epoch", "dd/mm/yyyy"])
async def test_report_rows_store_whole_sales_in_either_since_format(
    vendor: MokaFake, store: Store, clock: FakeClock, time_format: str
) -> None:
    vendor.seed(30, START)
    async with aiohttp.ClientSession() as session:
        settings = {**POLL, "base_url": vendor.url, "time_format": time_format}
        [loop] = poll_loops(MokaConnector, settings, store, session, clock=clock)
        result = await loop.run_once()

    assert result.status is ConnectionStatus.OK
    [first] = [r for r in vendor.data_requests() if "since" in r.query][:1]
    assert first.query["since"].isdigit() == (time_format == "epoch")
    stored = [Transaction.model_validate_json(r.payload) for r in await store.list_records()]
    assert len(stored) == 30
    for t in stored:
        n = int(t.external_id) - 700_000
        assert t.items
        assert t.subtotal - t.discount + t.service_charge + t.tax + t.rounding == t.total
        assert t.occurred_at == START + timedelta(seconds=30 * (n - 1))
        assert t.business_date == t.occurred_at.astimezone(ZoneInfo("Asia/Jakarta")).date()
