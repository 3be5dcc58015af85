"""The outbox end to end: a real daemon delivering to a local receiver, killed and restarted."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sambung.store.sqlite import SqliteStore
from sambung.testing.daemon import DaemonProcess, HttpClient, free_port
from sambung.testing.receiver import Answer, Receiver, ReceiverThread

from .payloads import PAWOON_SECRET, WEBHOOKS, pawoon_sale, signed

SINK_SECRET = "whsec_" + base64.b64encode(b"e2e-outbox-secret-at-least-24b").decode()
ADMIN_TOKEN = "admin-token-for-e2e-tests"


def config(receiver_url: str, admin_port: int, **sink: Any) -> dict[str, Any]:
    return {
        "server": {"admin": {"host": "127.0.0.1", "port": admin_port, "token": ADMIN_TOKEN}},
        "outlets": [
            {
                "id": "kemang",
                "name": "Kopi Senja Kemang",
                "connectors": {"pawoon": {"mode": "webhook", "webhook_secret": PAWOON_SECRET}},
            }
        ],
        "sinks": {
            "backend": {"type": "http", "url": receiver_url, "secret": SINK_SECRET, **sink},
            "archive": {"type": "jsonl", "path": "out/records.jsonl"},
        },
    }


def send(daemon: DaemonProcess, transaction_id: str) -> int:
    body = pawoon_sale(transaction_id)
    status, _ = daemon.post(
        f"{WEBHOOKS}/pawoon/kemang", body, signed(body, PAWOON_SECRET, "X-Webhook-Signature")
    )
    return status


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll `condition` until true; a generous bound so a slow machine only waits longer."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


async def outbox_keys(daemon: DaemonProcess) -> dict[str, str]:
    """idempotency key → status of every outbox row of the `backend` sink."""
    store = SqliteStore(daemon.workdir / "sambung.db")
    await store.open()
    try:
        rows = await store.list_outbox(sink="backend", limit=100_000)
    finally:
        await store.close()
    return {row.idempotency_key: row.status for row in rows}


def admin(port: int) -> HttpClient:
    return HttpClient(f"http://127.0.0.1:{port}")


AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def test_sigkill_mid_batch_then_restart_delivers_everything_with_the_same_ids(
    sambung_daemon: Any,
) -> None:
    receiver = Receiver(SINK_SECRET)
    # Slow answers keep a batch in flight long enough for the kill to land inside it.
    receiver.default = Answer(204, delay=0.02)
    with ThreadPoolExecutor(16) as pool, ReceiverThread(receiver) as running:
        daemon = sambung_daemon(config(running.url, free_port(), concurrency=2))
        statuses = list(pool.map(lambda i: send(daemon, f"TRX-{i:04d}"), range(300)))
        assert set(statuses) == {200}
        wait_until(lambda: running.count >= 60, "the first deliveries")
        daemon.kill()
        assert len(running.seen_ids()) < 300, "the kill should land before the end"

        daemon.start()
        wait_until(lambda: len(running.seen_ids()) == 300, "every record delivered")
        keys = await outbox_keys(daemon)

    assert len(keys) == 300
    # At least once, always under the row's own webhook-id: deduplicated, exactly once.
    assert running.seen_ids() == set(keys)
    assert all(request.verified for request in running.requests)
    lines = (daemon.workdir / "out/records.jsonl").read_text().splitlines()
    assert {json.loads(line)["data"]["external_id"] for line in lines} == {
        f"TRX-{i:04d}" for i in range(300)
    }


async def test_repeated_sigkills_mid_delivery_deliver_every_record_under_one_id(
    sambung_daemon: Any,
) -> None:
    count, kills = 600, 0
    receiver = Receiver(SINK_SECRET)
    receiver.default = Answer(204, delay=0.02)
    with ThreadPoolExecutor(16) as pool, ReceiverThread(receiver) as running:
        daemon = sambung_daemon(config(running.url, free_port(), concurrency=2))
        statuses = list(pool.map(lambda i: send(daemon, f"TRX-{i:04d}"), range(count)))
        assert set(statuses) == {200}
        while kills < 4:
            # Each kill lands a few dozen deliveries after the last restart: mid-batch.
            target = running.count + 40
            wait_until(lambda t=target: running.count >= t, "deliveries to resume")
            if len(running.seen_ids()) >= count:
                break
            daemon.kill()
            kills += 1
            daemon.start()
        wait_until(lambda: len(running.seen_ids()) == count, "every record delivered")
        keys = await outbox_keys(daemon)

    assert kills >= 3, f"only {kills} kills landed before the end"
    assert len(keys) == count
    # At least once, always under the row's own webhook-id: deduplicated, exactly once.
    assert running.seen_ids() == set(keys)
    assert all(request.verified for request in running.requests)
    ids_per_record: dict[str, set[str]] = {}
    for request in running.requests:
        external_id = request.payload["data"]["external_id"]
        ids_per_record.setdefault(external_id, set()).add(request.webhook_id)
    assert len(ids_per_record) == count
    assert all(len(ids) == 1 for ids in ids_per_record.values()), "a record under two ids"


async def test_admin_needs_the_token_and_serves_metrics_status_and_dead_letters(
    sambung_daemon: Any,
) -> None:
    receiver = Receiver(SINK_SECRET)
    receiver.answer_with(400, body='{"error": "unknown outlet"}')
    port = free_port()
    with ReceiverThread(receiver) as running:
        daemon = sambung_daemon(config(running.url, port))
        api = admin(port)
        for path in ("/metrics", "/readyz", "/api/v1/status", "/api/v1/dead-letters"):
            status, _ = api.get(path)
            assert status == 401, path
            status, _ = api.get(path, {"Authorization": "Bearer wrong-token-of-some-length"})
            assert status == 401, path
        status, _ = api.post("/api/v1/dead-letters/replay", b'{"all": true}')
        assert status == 401

        assert send(daemon, "TRX-1") == 200
        wait_until(lambda: running.count >= 1, "the first delivery")

        def dead_letters() -> list[dict[str, Any]]:
            _, body = api.get("/api/v1/dead-letters?stage=delivery", AUTH)
            return list(body["dead_letters"])

        wait_until(lambda: len(dead_letters()) == 1, "the 400 to be dead-lettered")
        [entry] = dead_letters()
        assert entry["error_type"] == "DeliveryRejected" and "unknown outlet" in entry["error"]
        status, shown = api.get(f"/api/v1/dead-letters/{entry['id']}", AUTH)
        assert status == 200 and json.loads(shown["payload"])["external_id"] == "TRX-1"

        # The receiver is fixed: replay through the API delivers it.
        status, answer = api.post(
            "/api/v1/dead-letters/replay", json.dumps({"ids": [entry["id"]]}).encode(), AUTH
        )
        assert status == 200 and answer["results"][0]["result"] == "requeued"
        wait_until(lambda: len(running.seen_ids()) == 1, "the replayed delivery")

        status, text = api.get("/metrics", AUTH)
        assert status == 200
        for series in (
            "integration_sync_total",
            "integration_sync_duration_seconds",
            "sambung_webhook_requests_total",
            "sambung_records_ingested_total",
            "sambung_outbox_pending",
            "sambung_outbox_oldest_pending_age_seconds",
            "sambung_deliveries_total",
            "sambung_dead_letters_total",
        ):
            assert re.search(rf"^{series}(_bucket)?{{", text, re.MULTILINE), series
        assert 'sambung_deliveries_total{result="rejected",sink="backend"} 1.0' in text

        status, body = api.get("/api/v1/status", AUTH)
        assert status == 200
        [connection] = body["connections"]
        assert (connection["outlet"], connection["connector"]) == ("kemang", "pawoon")
        assert connection["records"] == 1
        sinks = {sink["sink"]: sink for sink in body["sinks"]}
        assert sinks["backend"]["failures"] == 0  # replayed: delivered now
        assert sinks["backend"]["delivered"] == 1
        status, _ = api.get("/readyz", AUTH)
        assert status == 200


def test_cli_dlq_and_status(tmp_path: Path, sambung_daemon: Any) -> None:
    receiver = Receiver(SINK_SECRET)
    receiver.answer_with(422, body="no such item")
    with ReceiverThread(receiver) as running:
        daemon = sambung_daemon(config(running.url, free_port()))
        assert send(daemon, "TRX-1") == 200
        wait_until(lambda: running.count >= 1, "the first delivery")

        def cli(*args: str) -> str:
            done = subprocess.run(
                [sys.executable, "-m", "sambung", *args, "-c", str(daemon.config_path)]
                if args[0] == "status"
                else [sys.executable, "-m", "sambung", "dlq", "-c", str(daemon.config_path), *args],
                capture_output=True,
                text=True,
                check=True,
                env=daemon.env,
            )
            return done.stdout

        wait_until(lambda: "DeliveryRejected" in cli("list"), "the dead letter")
        listed = cli("list", "--stage", "delivery", "--json")
        entry = json.loads(listed.splitlines()[0])
        assert "no such item" in cli("show", str(entry["id"]))
        assert "requeued" in cli("replay", "--all", "--stage", "delivery")
        assert "not_open" in cli("replay", str(entry["id"]))
        wait_until(lambda: len(running.seen_ids()) == 1, "the replayed delivery")
        status = cli("status")
        assert "backend" in status and "archive" in status and "pawoon" in status
