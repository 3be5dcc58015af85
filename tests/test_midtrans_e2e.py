"""Midtrans with the daemon as a real process and its SQLite store: a late `pending` after
`settlement` is stale, the same notification twice is one revision, a refund or deny after
settlement is a new fact, and a settlement whose notification never came is healed by the
poll's Get Status."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sambung.store.sqlite import SqliteStore
from sambung.testing.daemon import DaemonProcess
from sambung.testing.fakes import json_bytes
from sambung_midtrans.fake import MidtransFake, notification

from .payloads import WEBHOOKS
from .waiting import until

KEY = "SB-Mid-server-e2e"
StartDaemon = Callable[..., DaemonProcess]


def config(base_url: str) -> dict[str, Any]:
    return {
        "outlets": [
            {
                "id": "kemang",
                "name": "Kopi Senja Kemang",
                "timezone": "Asia/Jakarta",
                "connectors": {
                    "midtrans": {
                        "mode": ["webhook", "poll"],
                        "server_key": "${MIDTRANS_SERVER_KEY}",
                        "base_url": base_url,
                        "interval": "15s",
                    }
                },
            }
        ],
        "sinks": {"archive": {"type": "jsonl", "path": "./records.jsonl", "kinds": ["payment"]}},
    }


@pytest.fixture
async def vendor() -> AsyncIterator[MidtransFake]:
    fake = MidtransFake(server_key=KEY)
    async with fake.serve():
        yield fake


@pytest.fixture
def daemon(sambung_daemon: StartDaemon, vendor: MidtransFake) -> DaemonProcess:
    return sambung_daemon(config(vendor.url), env={"MIDTRANS_SERVER_KEY": KEY})


async def stored(daemon: DaemonProcess) -> dict[str, Any]:
    store = SqliteStore(daemon.workdir / "sambung.db")
    await store.open()
    try:
        records = await store.list_records(source_system="midtrans", limit=1000)
        return {
            "status": {r.external_id: json.loads(r.payload)["status"] for r in records},
            "revision": {r.external_id: r.revision for r in records},
            "outbox": len(await store.list_outbox()),
        }
    finally:
        await store.close()


async def post(daemon: DaemonProcess, body: dict[str, Any]) -> dict[str, Any]:
    """Post a notification off the event loop (the fake answers the poll meanwhile)."""
    path = f"{WEBHOOKS}/midtrans/kemang"
    status, answer = await asyncio.to_thread(daemon.post, path, json_bytes(body))
    assert status == 200, answer
    assert isinstance(answer, dict)
    return answer


async def test_stale_duplicate_and_reversals_through_the_daemon(
    vendor: MidtransFake, daemon: DaemonProcess
) -> None:
    created = datetime.now(UTC) - timedelta(minutes=20)
    # Order 1: settled, then its late pending (stale), then the settlement again (duplicate).
    settled = notification(1, created, "settlement", KEY)
    first = [await post(daemon, b) for b in (settled, notification(1, created, "pending", KEY))]
    again = await post(daemon, settled)
    # Order 2: settled, then refunded. Order 3: settled, then denied (a reversal).
    for number, reversal in ((2, "refund"), (3, "deny")):
        await post(daemon, notification(number, created, "settlement", KEY))
        reversed_ = await post(daemon, notification(number, created, reversal, KEY))
        assert reversed_["duplicate"] is False and "stale" not in reversed_

    assert first[0]["duplicate"] is False
    assert first[1].get("stale") is True
    assert again["duplicate"] is True
    state = await stored(daemon)
    one, two, three = (f"kemang-mt-{n:06d}" for n in (1, 2, 3))
    assert state["status"] == {one: "paid", two: "refunded", three: "failed"}
    assert state["revision"] == {one: 1, two: 2, three: 2}
    assert state["outbox"] == 5


async def test_a_lost_settlement_is_healed_by_the_poll(
    vendor: MidtransFake, daemon: DaemonProcess
) -> None:
    created = datetime.now(UTC) - timedelta(minutes=10)
    pending = vendor.order(7, created, "pending")
    order = pending["order_id"]
    await post(daemon, pending)
    vendor.move(order, "settlement")  # settled at Midtrans; the notification never comes

    async def settled() -> bool:
        return (await stored(daemon))["status"] == {order: "paid"}

    await until(settled)
    state = await stored(daemon)
    assert state["revision"] == {order: 2} and state["outbox"] == 2
    assert order in vendor.asked
    assert KEY not in daemon.logs()
