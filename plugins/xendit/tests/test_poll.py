"""The reconciliation poll against the fake Xendit: missed callbacks recovered, paging by
`last_invoice_id`, Xendit's 429 with `Rate-Limit-Reset`, and a refused secret key."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from sambung.plugin import SystemClock, WebhookRequest
from sambung.testing import poll_loops
from sambung.testing.core import ConnectionStatus, PollLoop, SqliteStore, WebhookIngest
from sambung.testing.fake_vendor import FakeClock
from sambung_xendit import XenditConnector
from sambung_xendit.fake import XenditFake, callback_headers, invoice_id

START = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)
KEY, TOKEN = "xnd_development_reconcile", "xendit-callback-token"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START + timedelta(hours=3))


@pytest.fixture
async def vendor(clock: FakeClock) -> AsyncIterator[XenditFake]:
    fake = XenditFake(secret_key=KEY, callback_token=TOKEN, clock=clock)
    async with fake.serve():
        yield fake


@pytest.fixture
async def make_loop(vendor: XenditFake, store: SqliteStore, clock: FakeClock) -> AsyncIterator[Any]:
    async with aiohttp.ClientSession() as session:

        def make(**settings: Any) -> PollLoop:
            block = {
                "mode": ["webhook", "poll"],
                "callback_token": TOKEN,
                "secret_key": KEY,
                "base_url": vendor.url,
                **settings,
            }
            [loop] = poll_loops(XenditConnector, block, store, session, clock=clock)
            return loop

        yield make


async def statuses(store: SqliteStore) -> dict[str, str]:
    return {
        r.external_id: json.loads(r.payload)["status"] for r in await store.list_records(limit=1000)
    }


async def test_the_poll_recovers_a_missed_callback(
    vendor: XenditFake, store: SqliteStore, make_loop: Any
) -> None:
    loop = make_loop()
    xendit = loop.connector
    ingest = WebhookIngest(store, lambda _o, _k: ("books",), SystemClock(), lambda _e: None)
    delivered, missed = invoice_id(1), invoice_id(2)
    for sequence in (1, 2):
        vendor.create(sequence, START)
    vendor.pay(delivered, START + timedelta(minutes=5))
    vendor.pay(missed, START + timedelta(minutes=6))
    answer = await ingest.handle(
        xendit,
        WebhookRequest(body=vendor.callback(delivered), headers=callback_headers(TOKEN)),
        "application/json",
    )
    assert answer.status == 200
    assert await statuses(store) == {delivered: "paid"}  # the other callback never came

    result = await loop.run_once()

    assert result.status is ConnectionStatus.OK, result.error
    assert await statuses(store) == {delivered: "paid", missed: "paid"}
    # The invoice whose callback did arrive is unchanged: one outbox row each, no more.
    assert len(await store.list_outbox()) == 2


async def test_a_settlement_of_an_older_invoice_is_reconciled(
    vendor: XenditFake, store: SqliteStore, make_loop: Any, clock: FakeClock
) -> None:
    loop = make_loop(lookback="1h")
    vendor.sale(1, START + timedelta(hours=2, minutes=30))
    assert (await loop.run_once()).status is ConnectionStatus.OK
    assert await statuses(store) == {invoice_id(1): "paid"}

    # Two days later the funds settle, long after the cursor passed the invoice's creation.
    clock.advance(2 * 86400)
    vendor.settle(invoice_id(1), clock.now())
    assert (await loop.run_once()).status is ConnectionStatus.OK

    assert await statuses(store) == {invoice_id(1): "settled"}


async def test_pages_follow_last_invoice_id_with_the_asked_statuses(
    vendor: XenditFake, store: SqliteStore, make_loop: Any
) -> None:
    vendor.seed(250, START)
    vendor.create(999, START + timedelta(minutes=1))  # pending: not asked for
    loop = make_loop()

    result = await loop.run_once()

    assert result.status is ConnectionStatus.OK, result.error
    assert len(await statuses(store)) == result.records == 250
    calls = vendor.data_requests()
    assert [c.query["limit"] for c in calls] == ["100", "100", "100"]
    assert "last_invoice_id" not in calls[0].query
    assert calls[1].query["last_invoice_id"] and calls[2].query["last_invoice_id"]
    assert calls[0].query["created_after"].endswith("Z")


async def test_statuses_are_sent_as_xendit_lists_them(
    vendor: XenditFake, store: SqliteStore, make_loop: Any
) -> None:
    vendor.create(1, START)
    vendor.sale(2, START)
    loop = make_loop(statuses=["PENDING"])

    assert (await loop.run_once()).status is ConnectionStatus.OK

    assert await statuses(store) == {invoice_id(1): "pending"}


async def test_rate_limit_reset_is_honoured(
    vendor: XenditFake, store: SqliteStore, make_loop: Any, clock: FakeClock
) -> None:
    vendor.seed(5, START)
    vendor.rate_limit(reset_seconds=17)
    loop = make_loop()

    result = await loop.run_once()

    assert result.status is ConnectionStatus.OK, result.error
    assert [c.status for c in vendor.data_requests()] == [429, 200]
    assert any(wait >= 17 for wait in clock.slept), clock.slept
    assert len(await statuses(store)) == 5


async def test_a_refused_secret_key_needs_reauth(
    vendor: XenditFake, store: SqliteStore, make_loop: Any
) -> None:
    vendor.seed(3, START)
    loop = make_loop(secret_key="xnd_development_revoked")

    result = await loop.run_once()
    again = await loop.run_once()

    assert result.status is ConnectionStatus.NEEDS_REAUTH
    assert "API key is invalid" in (result.error or "")
    assert "xnd_development_revoked" not in (result.error or "")
    assert again.skipped
    assert await statuses(store) == {}
