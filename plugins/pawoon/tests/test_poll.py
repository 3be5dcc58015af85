"""Pawoon poll mode against its fake: conformance, tokens expiring mid-run, one token fetch for
many loops, refused credentials."""

from __future__ import annotations

import asyncio
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
from sambung_pawoon import PawoonConnector
from sambung_pawoon.fake import PawoonFake

START = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)


class TestPawoonPollConformance(PollConnectorConformance):
    connector = PawoonConnector

    def fake(self, clock: FakeClock) -> PawoonFake:
        return PawoonFake(timezone=self.timezone, clock=clock)

    def settings(self, url: str) -> dict[str, Any]:
        return {
            "mode": "poll",
            "client_id": "pawoon-client",
            "client_secret": "pawoon-secret",
            "base_url": url,
            "per_page": 20,
        }


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START + timedelta(hours=3))


@pytest.fixture
async def vendor(clock: FakeClock) -> AsyncIterator[PawoonFake]:
    fake = PawoonFake(clock=clock, monotonic_clock=clock.monotonic, token_ttl=timedelta(hours=1))
    async with fake.serve():
        yield fake


@pytest.fixture
async def loops(vendor: PawoonFake, store: Store, clock: FakeClock) -> AsyncIterator[Any]:
    async with aiohttp.ClientSession() as session:

        def make(outlets: int = 1, secret: str = "pawoon-secret") -> list[PollLoop]:
            block = {
                "mode": "poll",
                "client_id": "pawoon-client",
                "client_secret": secret,
                "base_url": vendor.url,
                "per_page": 20,
            }
            ids = [f"outlet-{n}" for n in range(outlets)]
            return poll_loops(PawoonConnector, block, store, session, clock=clock, outlets=ids)

        yield make


async def outbox_per_record(store: Store) -> dict[str, int]:
    ids = {r.id: r.external_id for r in await store.list_records(limit=10_000)}
    counts: dict[str, int] = {}
    for row in await store.list_outbox(limit=10_000):
        counts[ids[row.record_id]] = counts.get(ids[row.record_id], 0) + 1
    return counts


async def test_a_token_expiring_mid_pagination_costs_one_refresh(
    vendor: PawoonFake, store: Store, loops: Any
) -> None:
    vendor.seed(100, START)
    [loop] = loops()
    pages = 0

    def expire_after_two_pages(seen: Seen) -> None:
        nonlocal pages
        if seen.path == "/transactions" and seen.status == 200:
            pages += 1
            if pages == 2:
                vendor.expire_tokens()

    vendor.after_request = expire_after_two_pages
    result = await loop.run_once()

    assert result.status is ConnectionStatus.OK
    assert vendor.tokens_issued == 2
    counts = await outbox_per_record(store)
    assert len(counts) == 100 and set(counts.values()) == {1}


async def test_fifty_loops_on_one_client_fetch_one_token(vendor: PawoonFake, loops: Any) -> None:
    vendor.seed(10, START)

    results = await asyncio.gather(*(loop.run_once() for loop in loops(outlets=50)))

    assert all(r.status is ConnectionStatus.OK for r in results)
    assert vendor.tokens_issued == 1


async def test_refused_client_credentials_need_reauth(
    vendor: PawoonFake, store: Store, loops: Any
) -> None:
    vendor.seed(5, START)
    [loop] = loops(secret="wrong")

    result = await loop.run_once()
    again = await loop.run_once()

    assert result.status is ConnectionStatus.NEEDS_REAUTH
    assert "invalid_client" in (result.error or "")
    assert again.skipped
    assert vendor.data_requests() == []


async def test_real_shaped_rows_are_stored_whole_and_paging_ends_on_a_short_page(
    vendor: PawoonFake, store: Store, loops: Any, clock: FakeClock
) -> None:
    vendor.seed(40, START)  # two full pages of 20, then an empty one
    [loop] = loops()

    result = await loop.run_once()

    assert result.status is ConnectionStatus.OK and result.records == 40
    pages = [r for r in vendor.data_requests() if r.path == "/transactions"]
    assert [r.query["page"] for r in pages] == ["1", "2", "3"]
    stored = [Transaction.model_validate_json(r.payload) for r in await store.list_records()]
    assert len(stored) == 40
    by_id = {t.external_id: t for t in stored}
    for n in range(1, 41):
        t = by_id[f"RC{n:08d}"]
        assert t.items, "a sale without its lines"
        assert t.tax > 0
        assert t.subtotal - t.discount + t.service_charge + t.tax + t.rounding == t.total
        assert t.occurred_at == START + timedelta(seconds=30 * (n - 1))
        assert t.business_date == t.occurred_at.astimezone(ZoneInfo("Asia/Jakarta")).date()
    assert any(t.discount for t in stored)
