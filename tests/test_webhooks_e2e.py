"""Webhooks end to end: `sambung run` as a real process, every answer of the public listener."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sambung.store import DeadLetterQuery
from sambung.store.sqlite import SqliteStore
from sambung.testing.daemon import DaemonProcess, HttpClient, free_port

from .payloads import (
    HELLO_SECRET,
    MOKA_SECRET,
    PAWOON_SECRET,
    WEBHOOKS,
    hello_sale,
    moka_event,
    pawoon_sale,
    signed,
)

StartDaemon = Callable[..., DaemonProcess]
PAWOON_HEADER, MOKA_HEADER = "X-Webhook-Signature", "X-Moka-Signature"


def config(max_body_bytes: int = 1_048_576) -> dict[str, Any]:
    """Two outlets (Jakarta and Makassar) with Pawoon, one with Moka, and one sink."""
    return {
        "server": {"public": {"max_body_bytes": max_body_bytes}},
        "outlets": [
            {
                "id": "kemang",
                "name": "Kopi Senja Kemang",
                "timezone": "Asia/Jakarta",
                "connectors": {
                    "pawoon": {"mode": "webhook", "webhook_secret": "${PAWOON_SECRET}"},
                    "moka": {"mode": "webhook", "webhook_secret": "${MOKA_SECRET}"},
                },
            },
            {
                "id": "panakkukang",
                "name": "Kopi Senja Panakkukang",
                "timezone": "Asia/Makassar",
                "connectors": {"pawoon": {"mode": "webhook", "webhook_secret": "${PAWOON_SECRET}"}},
            },
        ],
        "sinks": {"books": {"type": "ledger", "kinds": ["transaction"]}},
    }


@pytest.fixture
def daemon(sambung_daemon: StartDaemon, hello_site: Path) -> DaemonProcess:
    """A daemon on the e2e config; its `ledger` sink type comes from the installed hello plugin."""
    return sambung_daemon(config(max_body_bytes=64 * 1024), env=env(hello_site))


def env(hello_site: Path) -> dict[str, str]:
    return {
        "PAWOON_SECRET": PAWOON_SECRET,
        "MOKA_SECRET": MOKA_SECRET,
        "PYTHONPATH": str(hello_site),
    }


def post_pawoon(daemon: DaemonProcess, body: bytes, outlet: str = "kemang") -> tuple[int, Any]:
    return daemon.post(
        f"{WEBHOOKS}/pawoon/{outlet}", body, signed(body, PAWOON_SECRET, PAWOON_HEADER)
    )


def post_moka(daemon: DaemonProcess, body: bytes) -> tuple[int, Any]:
    return daemon.post(f"{WEBHOOKS}/moka", body, signed(body, MOKA_SECRET, MOKA_HEADER))


async def contents(daemon: DaemonProcess) -> dict[str, Any]:
    """What the daemon's store holds right now, read through the store's own interface."""
    store = SqliteStore(daemon.workdir / "sambung.db")
    await store.open()
    try:
        return {
            "counts": await store.counts(),
            "records": {
                (r.source_system, r.external_id): r for r in await store.list_records(limit=10_000)
            },
            "outbox": await store.list_outbox(),
            "dead_letters": await store.find_dead_letters(DeadLetterQuery()),
            "store": None,
        }
    finally:
        await store.close()


async def test_a_mapped_pawoon_sale_is_committed_then_acknowledged(daemon: DaemonProcess) -> None:
    status, answer = post_pawoon(daemon, pawoon_sale("TRX-1001"))

    assert status == 200
    assert answer["success"] is True and answer["duplicate"] is False
    assert answer["event_type"] == "transaction.created"
    assert answer["internal_ids"] == [answer["internal_id"]]
    stored = (await contents(daemon))["records"][("pawoon", "TRX-1001")]
    record = json.loads(stored.payload)
    assert record["total"] == "27500" and record["payment_method"] == "qris"
    assert record["occurred_at"].startswith("2026-11-26T13:15:00")  # 20:15 WIB
    assert record["business_date"] == "2026-11-26"


async def test_makassar_outlet_reads_naive_times_in_wita(daemon: DaemonProcess) -> None:
    body = pawoon_sale("TRX-MKS-1", timestamp="2026-11-27 00:30:00")
    status, _ = post_pawoon(daemon, body, outlet="panakkukang")
    assert status == 200
    record = json.loads((await contents(daemon))["records"][("pawoon", "TRX-MKS-1")].payload)
    assert record["occurred_at"].startswith("2026-11-26T16:30:00")  # 00:30 WITA is 16:30 UTC
    assert record["business_date"] == "2026-11-27"
    assert record["outlet"] == "panakkukang"


async def test_the_same_delivery_again_is_a_duplicate(daemon: DaemonProcess) -> None:
    body = pawoon_sale("TRX-1002")
    first = post_pawoon(daemon, body)
    again = post_pawoon(daemon, body)

    assert first[0] == again[0] == 200
    assert again[1]["duplicate"] is True
    assert again[1]["internal_id"] == first[1]["internal_id"]
    state = await contents(daemon)
    assert state["counts"]["records"] == 1 and state["counts"]["raw_events"] == 1
    assert len(state["outbox"]) == 1


async def test_new_content_updates_the_record_and_writes_one_outbox_row(
    daemon: DaemonProcess,
) -> None:
    post_pawoon(daemon, pawoon_sale("TRX-1003", total=27500))
    status, answer = post_pawoon(daemon, pawoon_sale("TRX-1003", total=30000))

    assert status == 200 and answer["duplicate"] is False
    state = await contents(daemon)
    assert state["records"][("pawoon", "TRX-1003")].revision == 2
    assert [(row.sink, row.revision) for row in state["outbox"]] == [("books", 1), ("books", 2)]
    assert '"total":"30000"' in state["outbox"][1].payload


async def test_moka_older_version_arriving_late_never_overwrites(daemon: DaemonProcess) -> None:
    newer = moka_event(
        "evt-2",
        777,
        event="moka.transaction.updated",
        total="60000",
        updated_at="2026-11-26T20:30:00+07:00",
    )
    older = moka_event("evt-1", 777, total="55755.0125", updated_at="2026-11-26T20:15:00+07:00")

    assert post_moka(daemon, newer)[0] == 200
    status, answer = post_moka(daemon, older)

    assert status == 200 and answer["duplicate"] is False and answer.get("stale") is True
    state = await contents(daemon)
    record = json.loads(state["records"][("moka", "777")].payload)
    assert record["total"] == "60000"
    assert len(state["outbox"]) == 1


async def test_moka_keeps_fractional_amounts_exact(daemon: DaemonProcess) -> None:
    status, answer = post_moka(daemon, moka_event("evt-9", 901))
    assert status == 200, answer
    record = json.loads((await contents(daemon))["records"][("moka", "901")].payload)
    assert record["total"] == "55755.0125"
    assert record["tax"] == "755.0125"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {PAWOON_HEADER: ""},
        {PAWOON_HEADER: "not-hex"},
        {PAWOON_HEADER: "ab" * 32},
        {PAWOON_HEADER.lower(): "00" * 32},
    ],
    ids=["missing", "empty", "not-hex", "wrong", "wrong-lowercase-header"],
)
async def test_unsigned_or_badly_signed_is_401_and_stores_nothing(
    daemon: DaemonProcess, headers: dict[str, str]
) -> None:
    status, answer = daemon.post(f"{WEBHOOKS}/pawoon/kemang", pawoon_sale("TRX-X"), headers)
    assert status == 401 and answer["success"] is False
    counts = (await contents(daemon))["counts"]
    assert counts["raw_events"] == counts["records"] == counts["dead_letters"] == 0


async def test_signed_with_the_other_vendors_secret_is_401(daemon: DaemonProcess) -> None:
    body = pawoon_sale("TRX-Y")
    status, _ = daemon.post(
        f"{WEBHOOKS}/pawoon/kemang", body, signed(body, MOKA_SECRET, PAWOON_HEADER)
    )
    assert status == 401


async def test_too_large_is_413(daemon: DaemonProcess) -> None:
    body = pawoon_sale("TRX-BIG", note="x" * 70_000)
    status, answer = post_pawoon(daemon, body)
    assert status == 413 and answer["error"] == "too_large"
    assert (await contents(daemon))["counts"]["raw_events"] == 0


async def test_verified_but_not_json_is_400_with_the_body_in_the_dlq(
    daemon: DaemonProcess,
) -> None:
    body = b"transaction_id=TRX-1&total=27500"
    status, answer = post_pawoon(daemon, body)

    assert status == 400 and answer["error"] == "invalid_payload"
    [letter] = (await contents(daemon))["dead_letters"]
    assert letter.stage == "ingest" and letter.connector == "pawoon"
    assert letter.id == answer["dead_letter_id"]
    store = SqliteStore(daemon.workdir / "sambung.db")
    await store.open()
    kept = await store.get_raw_event(letter.raw_event_id)
    await store.close()
    assert kept is not None and kept.body == body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (pawoon_sale("TRX-M1", total="dua puluh ribu"), "data.total"),
        (pawoon_sale(None), "data.transaction_id"),
        (json.dumps({"event_type": "voucher.redeemed", "data": {}}).encode(), "event_type"),
        (b"[1, 2, 3]", None),
    ],
    ids=["bad-amount", "missing-field", "unknown-event", "not-an-object"],
)
async def test_unmappable_is_422_naming_the_field_with_the_body_in_the_dlq(
    daemon: DaemonProcess, body: bytes, field: str | None
) -> None:
    status, answer = post_pawoon(daemon, body)

    assert status == 422, answer
    assert answer["success"] is False
    if field is not None:
        assert answer["field"] == field
        assert field in answer["message"]
    state = await contents(daemon)
    assert state["counts"]["records"] == 0
    [letter] = state["dead_letters"]
    assert letter.raw_event_id == answer["raw_event_id"]


async def test_unknown_connector_and_outlet_are_404(daemon: DaemonProcess) -> None:
    body = pawoon_sale("TRX-Z")
    assert post_pawoon(daemon, body, outlet="bintaro")[0] == 404
    status, answer = daemon.post(
        f"{WEBHOOKS}/pawoon", body, signed(body, PAWOON_SECRET, PAWOON_HEADER)
    )
    assert status == 404 and answer["outlets"] == ["kemang", "panakkukang"]
    assert daemon.post(f"{WEBHOOKS}/olsera/kemang", body)[0] == 404


async def test_single_outlet_connector_answers_on_the_short_path(daemon: DaemonProcess) -> None:
    status, answer = post_moka(daemon, moka_event("evt-short", 1))
    assert status == 200 and answer["success"] is True


async def test_moka_item_events_are_acknowledged_without_records(daemon: DaemonProcess) -> None:
    body = json.dumps(
        {
            "header": {
                "timestamp": "2026-11-26T20:15:00+07:00",
                "event_name": "moka.item.updated",
                "event_id": "evt-item-1",
                "outlet_id": "41230",
                "version": 1,
            },
            "body": {"item": {"id": 5, "name": "Croissant"}},
        }
    ).encode()
    status, answer = post_moka(daemon, body)
    assert status == 200 and answer["internal_ids"] == []
    assert (await contents(daemon))["counts"]["raw_events"] == 1


async def test_a_third_party_connector_is_found_through_its_entry_point_alone(
    sambung_daemon: StartDaemon, hello_site: Path
) -> None:
    hello = sambung_daemon(
        {
            "outlets": [
                {
                    "id": "kemang",
                    "name": "Kemang",
                    "connectors": {"hello": {"mode": "webhook", "webhook_secret": HELLO_SECRET}},
                }
            ]
        },
        env={"PYTHONPATH": str(hello_site)},
    )
    body = hello_sale("H-1")
    status, answer = hello.post(
        f"{WEBHOOKS}/hello", body, signed(body, HELLO_SECRET, "X-Hello-Signature")
    )
    assert status == 200 and answer["event_type"] == "sale"
    record = json.loads((await contents(hello))["records"][("hello", "H-1")].payload)
    assert record["payment_method"] == "cash"


async def test_admin_listener_needs_its_token(
    sambung_daemon: StartDaemon, hello_site: Path
) -> None:
    port, token = free_port(), "admin-token-0123456789"
    conf = config()
    conf["server"]["admin"] = {"host": "127.0.0.1", "port": port, "token": token}
    daemon = sambung_daemon(conf, env=env(hello_site))
    admin = HttpClient(f"http://127.0.0.1:{port}")
    assert admin.get("/readyz")[0] == 401
    assert admin.get("/readyz", {"Authorization": "Bearer wrong-token-0123456789"})[0] == 401
    status, answer = admin.get("/readyz", {"Authorization": f"Bearer {token}"})
    assert status == 200 and answer == {"ready": True, "problems": []}
    assert token not in daemon.logs()


async def test_no_secret_ever_reaches_the_log(daemon: DaemonProcess) -> None:
    post_pawoon(daemon, pawoon_sale("TRX-LOG-1"))
    post_pawoon(daemon, b"not json")
    daemon.post(f"{WEBHOOKS}/pawoon/kemang", b"{}", {PAWOON_HEADER: "00" * 32})
    post_moka(daemon, moka_event("evt-log", 5))
    logs = daemon.logs()
    assert "webhook.accepted" in logs and "webhook.unauthorized" in logs
    for secret in (PAWOON_SECRET, MOKA_SECRET):
        assert secret not in logs


async def test_plugins_are_told_of_each_new_dead_letter(daemon: DaemonProcess) -> None:
    body = pawoon_sale("TRX-DL", total="lima ribu")
    status, answer = post_pawoon(daemon, body)
    post_pawoon(daemon, body)  # the same failure again is the same entry: told once

    assert status == 422
    told = daemon.workdir / "hello-dead-letters.txt"
    for _ in range(100):  # the hook runs in a worker thread, just after the answer
        if told.exists():
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # room for a wrong second notice to land before we count
    lines = told.read_text().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"{answer['dead_letter_id']} ingest kemang/pawoon: data.total")
