"""Xendit with the daemon as a real process: callbacks out of order and repeated end in the
right status, a wrong token gets 401 and stores nothing, and the reconciliation poll recovers
a callback that never came."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sambung.store.sqlite import SqliteStore
from sambung.testing.daemon import DaemonProcess
from sambung_xendit.fake import XenditFake, invoice_id

from .payloads import WEBHOOKS
from .waiting import until

KEY, TOKEN = "xnd_development_e2e", "xendit-e2e-callback-token"
StartDaemon = Callable[..., DaemonProcess]


def config(base_url: str) -> dict[str, Any]:
    return {
        "outlets": [
            {
                "id": "kemang",
                "name": "Kopi Senja Kemang",
                "timezone": "Asia/Jakarta",
                "connectors": {
                    "xendit": {
                        "mode": ["webhook", "poll"],
                        "callback_token": "${XENDIT_CALLBACK_TOKEN}",
                        "secret_key": "${XENDIT_SECRET_KEY}",
                        "base_url": base_url,
                        "interval": "15s",
                    }
                },
            }
        ],
        "sinks": {"archive": {"type": "jsonl", "path": "./records.jsonl", "kinds": ["payment"]}},
    }


@pytest.fixture
async def vendor() -> AsyncIterator[XenditFake]:
    fake = XenditFake(secret_key=KEY, callback_token=TOKEN)
    async with fake.serve():
        yield fake


@pytest.fixture
def daemon(sambung_daemon: StartDaemon, vendor: XenditFake) -> DaemonProcess:
    env = {"XENDIT_CALLBACK_TOKEN": TOKEN, "XENDIT_SECRET_KEY": KEY}
    return sambung_daemon(config(vendor.url), env=env)


async def stored(daemon: DaemonProcess) -> dict[str, Any]:
    store = SqliteStore(daemon.workdir / "sambung.db")
    await store.open()
    try:
        records = await store.list_records(source_system="xendit", limit=1000)
        return {
            "status": {r.external_id: json.loads(r.payload)["status"] for r in records},
            "revision": {r.external_id: r.revision for r in records},
            "outbox": len(await store.list_outbox()),
            "counts": await store.counts(),
        }
    finally:
        await store.close()


def url(daemon: DaemonProcess) -> str:
    return f"{daemon.url}{WEBHOOKS}/xendit/kemang"


async def test_out_of_order_and_repeated_callbacks_end_in_the_right_status(
    vendor: XenditFake, daemon: DaemonProcess
) -> None:
    now = datetime.now(UTC) - timedelta(hours=1)
    vendor.create(1, now)
    first = invoice_id(1)
    pending = vendor.callback(first)
    vendor.pay(first, now + timedelta(minutes=4))
    paid = vendor.callback(first)
    vendor.settle(first, now + timedelta(minutes=50))
    settled = vendor.callback(first)

    answers = [
        await vendor.send_callback(url(daemon), body)
        for body in (paid, settled, pending, paid, settled)
    ]

    assert [status for status, _ in answers] == [200] * 5
    flags = [(a.get("duplicate"), a.get("stale", False)) for _, a in answers]
    assert flags == [(False, False), (False, False), (False, True), (False, True), (True, False)]
    state = await stored(daemon)
    assert state["status"] == {first: "settled"}
    assert state["revision"] == {first: 2}  # paid, then settled; nothing after
    assert state["counts"]["raw_events"] == 3  # one per invoice status


async def test_a_wrong_or_missing_token_is_401_and_stores_nothing(
    vendor: XenditFake, daemon: DaemonProcess
) -> None:
    vendor.sale(7, datetime.now(UTC))
    body = vendor.callback(invoice_id(7))

    wrong = await vendor.send_callback(url(daemon), body, token="not-the-token")
    missing = daemon.post(f"{WEBHOOKS}/xendit/kemang", body)

    assert wrong[0] == missing[0] == 401
    counts = (await stored(daemon))["counts"]
    assert counts["raw_events"] == counts["dead_letters"] == 0
    assert "not-the-token" not in daemon.logs() and TOKEN not in daemon.logs()


async def test_the_reconciliation_poll_recovers_a_missed_callback(
    vendor: XenditFake, daemon: DaemonProcess
) -> None:
    start = datetime.now(UTC) - timedelta(minutes=30)
    vendor.sale(1, start)
    vendor.sale(2, start + timedelta(minutes=1))  # its callback is lost
    status, answer = await vendor.send_callback(url(daemon), vendor.callback(invoice_id(1)))
    assert status == 200, answer

    async def both_paid() -> bool:
        found = (await stored(daemon))["status"]
        return found == {invoice_id(1): "paid", invoice_id(2): "paid"}

    await until(both_paid)
    state = await stored(daemon)
    assert state["revision"] == {invoice_id(1): 1, invoice_id(2): 1}
    assert state["outbox"] == 2
