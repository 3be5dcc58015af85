"""Gap healing against the fake Midtrans: Get Status asked about pending payments and about
orders POS sales name, a 404 that is no error, Midtrans's 429 and 5xx, and a refused key."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from sambung.plugin import LineItem, Transaction, WebhookRequest
from sambung.testing import outlet, poll_loops
from sambung.testing.core import (
    ConnectionStatus,
    IngestRequest,
    PollLoop,
    SqliteStore,
    WebhookIngest,
)
from sambung.testing.fake_vendor import FakeClock
from sambung.testing.fakes import json_bytes
from sambung_midtrans import MidtransConnector
from sambung_midtrans.fake import MidtransFake, notification

# Whole hours before now, so the outlet's recent business dates hold these payments.
START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
KEY = "SB-Mid-server-heal"
KEMANG = outlet("kemang", "Asia/Jakarta")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START + timedelta(hours=3))


@pytest.fixture
async def vendor(clock: FakeClock) -> AsyncIterator[MidtransFake]:
    fake = MidtransFake(server_key=KEY, clock=clock)
    async with fake.serve():
        yield fake


@pytest.fixture
async def make_loop(
    vendor: MidtransFake, store: SqliteStore, clock: FakeClock
) -> AsyncIterator[Any]:
    async with aiohttp.ClientSession() as session:

        def make(**settings: Any) -> PollLoop:
            block = {
                "mode": ["webhook", "poll"],
                "server_key": KEY,
                "base_url": vendor.url,
                **settings,
            }
            [loop] = poll_loops(MidtransConnector, block, store, session, clock=clock)
            return loop

        yield make


async def notify(store: SqliteStore, loop: PollLoop, body: dict[str, Any]) -> Any:
    """Post one notification through core's webhook intake, as Midtrans would."""
    ingest = WebhookIngest(store, lambda _o, _k: ("books",), loop.clock, lambda _e: None)
    headers = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json"}))
    request = WebhookRequest(body=json_bytes(body), headers=headers)
    answer = await ingest.handle(loop.connector, request, "application/json")  # type: ignore[arg-type]
    assert answer.status == 200
    return answer


async def payments(store: SqliteStore) -> dict[str, str]:
    return {
        r.external_id: json.loads(r.payload)["status"]
        for r in await store.list_records(source_system="midtrans", limit=1000)
    }


async def pos_sale(store: SqliteStore, number: str, label: str, at: datetime) -> None:
    """A POS sale stored as a Pawoon poll would store it."""
    sale = Transaction.rung_up(
        outlet="kemang",
        source_system="pawoon",
        external_id=number,
        occurred_at=at,
        tz=KEMANG.timezone,
        total=Decimal(52500),
        payment_label=label,
        items=(
            LineItem(
                name="Es Kopi", quantity=Decimal(1), unit_price=Decimal(52500), total=Decimal(52500)
            ),
        ),
    )
    await store.ingest(IngestRequest(records=[sale], routes=[()]))


async def test_a_pending_payment_whose_settlement_never_came_is_settled_by_the_poll(
    vendor: MidtransFake, store: SqliteStore, make_loop: Any
) -> None:
    loop = make_loop()
    pending = vendor.order(1, START, "pending")
    order = pending["order_id"]
    await notify(store, loop, pending)
    vendor.move(order, "settlement")  # Midtrans settled it; its notification was lost
    assert await payments(store) == {order: "pending"}

    result = await loop.run_once()

    assert result.status is ConnectionStatus.OK, result.error
    assert await payments(store) == {order: "paid"}
    [record] = await store.list_records(source_system="midtrans")
    assert record.revision == 2 and len(await store.list_outbox()) == 2
    assert vendor.asked == [order]

    # Nothing is pending any more: the next run asks nothing.
    assert (await loop.run_once()).status is ConnectionStatus.OK
    assert vendor.asked == [order]


async def test_orders_named_by_pos_sales_are_asked_and_an_unknown_one_is_no_error(
    vendor: MidtransFake, store: SqliteStore, make_loop: Any, clock: FakeClock
) -> None:
    loop = make_loop(sales_from=["pawoon"], order_id="PW-{external_id}")
    await pos_sale(store, "KMG-1", "QRIS", START)
    await pos_sale(store, "KMG-2", "GoPay", START + timedelta(minutes=5))
    await pos_sale(store, "KMG-3", "Tunai", START + timedelta(minutes=9))  # cash: not Midtrans
    vendor.order(4, START, "settlement", order_id="PW-KMG-1")

    result = await loop.run_once()

    assert result.status is ConnectionStatus.OK, result.error
    assert await payments(store) == {"PW-KMG-1": "paid"}
    assert sorted(vendor.asked) == ["PW-KMG-1", "PW-KMG-2"]
    assert [r.status for r in vendor.data_requests()].count(404) == 1

    # The unknown order is not asked about again at once, but is after not_found_retry.
    await loop.run_once()
    assert vendor.asked.count("PW-KMG-2") == 1
    assert vendor.asked.count("PW-KMG-1") == 1  # its payment is stored: nothing to heal
    clock.advance(31 * 60)
    vendor.order(5, START + timedelta(minutes=5), "pending", order_id="PW-KMG-2")
    assert (await loop.run_once()).status is ConnectionStatus.OK
    assert await payments(store) == {"PW-KMG-1": "paid", "PW-KMG-2": "pending"}


async def test_an_unknown_order_in_an_http_200_body_is_no_error_either(
    store: SqliteStore, make_loop: Any, clock: FakeClock
) -> None:
    fake = MidtransFake(server_key=KEY, clock=clock, not_found_in_body=True)
    async with fake.serve():
        loop = make_loop(base_url=fake.url, sales_from=["pawoon"])
        await pos_sale(store, "KMG-9", "QRIS", START)

        result = await loop.run_once()

    assert result.status is ConnectionStatus.OK, result.error
    assert fake.asked == ["KMG-9"] and await payments(store) == {}


async def test_a_429_and_a_5xx_are_retried_within_the_run(
    vendor: MidtransFake, store: SqliteStore, make_loop: Any, clock: FakeClock
) -> None:
    loop = make_loop()
    for n in (1, 2):
        await notify(store, loop, vendor.order(n, START, "pending"))
        vendor.move(vendor.orders[f"kemang-mt-{n:06d}"]["order_id"], "settlement")
    vendor.faults.fail(429, headers={"Retry-After": "7"}, body='{"status_code": "429"}')
    vendor.faults.fail(503)

    result = await loop.run_once()

    assert result.status is ConnectionStatus.OK, result.error
    assert [r.status for r in vendor.data_requests()][:2] == [429, 503]
    assert 7 in clock.slept
    assert set((await payments(store)).values()) == {"paid"}


async def test_a_vendor_down_for_the_whole_run_fails_it_and_the_next_run_recovers(
    vendor: MidtransFake, store: SqliteStore, make_loop: Any
) -> None:
    loop = make_loop(retries=1)
    body = vendor.order(1, START, "pending")
    await notify(store, loop, body)
    vendor.move(body["order_id"], "settlement")
    vendor.faults.fail(502, times=2)

    failed = await loop.run_once()
    healed = await loop.run_once()

    assert failed.status is ConnectionStatus.FAILING and "502" in (failed.error or "")
    assert healed.status is ConnectionStatus.OK
    assert await payments(store) == {body["order_id"]: "paid"}


async def test_a_slow_answer_is_a_timeout_that_is_retried(
    vendor: MidtransFake, store: SqliteStore, make_loop: Any
) -> None:
    loop = make_loop(timeout="1s", retries=2)
    body = vendor.order(1, START, "pending")
    await notify(store, loop, body)
    vendor.move(body["order_id"], "settlement")
    vendor.faults.slow(3.0)

    result = await loop.run_once()

    assert result.status is ConnectionStatus.OK, result.error
    assert await payments(store) == {body["order_id"]: "paid"}


async def test_a_refused_server_key_needs_reauth(
    vendor: MidtransFake, store: SqliteStore, make_loop: Any
) -> None:
    loop = make_loop(server_key="SB-Mid-server-revoked")
    # Signed with the key this connection has, so the webhook takes it; Midtrans refuses it.
    await notify(store, loop, notification(1, START, "pending", "SB-Mid-server-revoked"))

    result = await loop.run_once()
    again = await loop.run_once()

    assert result.status is ConnectionStatus.NEEDS_REAUTH
    assert "SB-Mid-server-revoked" not in (result.error or "")
    assert again.skipped


async def test_many_candidates_take_turns_under_max_orders_per_run(
    vendor: MidtransFake, store: SqliteStore, make_loop: Any
) -> None:
    loop = make_loop(max_orders_per_run=2)
    for n in range(1, 6):
        await notify(store, loop, vendor.order(n, START, "pending"))

    for _ in range(3):
        assert (await loop.run_once()).status is ConnectionStatus.OK

    assert len(vendor.asked) == 6
    assert len(set(vendor.asked)) == 5  # every pending order asked, none starved


async def test_an_order_midtrans_refuses_is_skipped_and_the_run_goes_on(
    vendor: MidtransFake, store: SqliteStore, make_loop: Any
) -> None:
    loop = make_loop(sales_from=["pawoon"])
    await pos_sale(store, "BAD#1", "QRIS", START)
    await pos_sale(store, "KMG-2", "QRIS", START)
    vendor.order(2, START, "settlement", order_id="KMG-2")
    refusal = '{"status_code": "400", "status_message": "Invalid order_id"}'
    vendor.faults.fail(400, path="/v2/BAD", body=refusal)

    result = await loop.run_once()

    assert result.status is ConnectionStatus.OK, result.error
    assert await payments(store) == {"KMG-2": "paid"}
