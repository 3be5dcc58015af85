"""Crashes and shutdowns: nothing acknowledged is lost, nothing is written twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from sambung.store.sqlite import SqliteStore
from sambung.testing.daemon import DaemonProcess

from .payloads import PAWOON_SECRET, WEBHOOKS, pawoon_sale, signed

# SIGKILLs in a row, each in the middle of a load: each restart must recover the last one's mess.
KILLS = 4
CONFIG: dict[str, Any] = {
    "outlets": [
        {
            "id": "kemang",
            "name": "Kopi Senja Kemang",
            "timezone": "Asia/Jakarta",
            "connectors": {"pawoon": {"mode": "webhook", "webhook_secret": PAWOON_SECRET}},
        }
    ],
    "sinks": {"books": {"type": "ledger"}},
}


def send(daemon: DaemonProcess, transaction_id: str) -> tuple[str, int]:
    """POST one signed sale; a connection the daemon dropped counts as status 0."""
    body = pawoon_sale(transaction_id)
    try:
        status, _ = daemon.post(
            f"{WEBHOOKS}/pawoon/kemang", body, signed(body, PAWOON_SECRET, "X-Webhook-Signature")
        )
    except OSError:
        status = 0
    return transaction_id, status


async def stored(daemon: DaemonProcess) -> tuple[set[str], dict[str, int]]:
    """External ids of the stored records, and outbox rows per record id."""
    store = SqliteStore(daemon.workdir / "sambung.db")
    await store.open()
    try:
        records = await store.list_records(limit=100_000)
        outbox = await store.list_outbox(limit=100_000)
    finally:
        await store.close()
    per_record: dict[str, int] = {}
    by_id = {r.id: r.external_id for r in records}
    for row in outbox:
        per_record[by_id[row.record_id]] = per_record.get(by_id[row.record_id], 0) + 1
    return {r.external_id for r in records}, per_record


def load_then(
    daemon: DaemonProcess, stop: str, ids: Sequence[str], *, concurrency: int = 16
) -> set[str]:
    """Send a sale for each id, `concurrency` at a time; `stop` the daemon once a third are
    acknowledged.

    Returns the ids that got a 200: those, and only those, were promised to the sender.
    """
    acknowledged: set[str] = set()
    with ThreadPoolExecutor(concurrency) as pool:
        futures = [pool.submit(send, daemon, transaction_id) for transaction_id in ids]
        stopped = False
        for future in as_completed(futures):
            transaction_id, status = future.result()
            assert status in (200, 0, 503), f"{transaction_id}: unexpected {status}"
            if status == 200:
                acknowledged.add(transaction_id)
            if not stopped and len(acknowledged) >= len(ids) // 3:
                stopped = True
                getattr(daemon, stop)()
    return acknowledged


def sale_ids(count: int, prefix: str = "TRX") -> list[str]:
    """`count` distinct transaction ids."""
    return [f"{prefix}-{i:05d}" for i in range(count)]


async def test_sigkill_under_load_loses_no_acknowledged_webhook(
    sambung_daemon: Any, hello_site: Path
) -> None:
    daemon = sambung_daemon(CONFIG, env={"PYTHONPATH": str(hello_site)})
    acknowledged = load_then(daemon, "kill", sale_ids(300))

    daemon.start()
    ids, outbox = await stored(daemon)
    assert acknowledged <= ids, f"lost after SIGKILL: {sorted(acknowledged - ids)[:5]}"

    # The senders retry everything; nothing is stored or queued for delivery twice.
    with ThreadPoolExecutor(16) as pool:
        retried = list(pool.map(lambda i: send(daemon, f"TRX-{i:05d}"), range(300)))
    assert all(status == 200 for _, status in retried)
    ids, outbox = await stored(daemon)
    assert len(ids) == 300
    assert set(outbox.values()) == {1}, "a record got more than one outbox row"


async def test_repeated_sigkills_at_high_concurrency_lose_no_acknowledged_webhook(
    sambung_daemon: Any, hello_site: Path
) -> None:
    daemon = sambung_daemon(CONFIG, env={"PYTHONPATH": str(hello_site)})
    acknowledged: set[str] = set()
    every: list[str] = []
    for kill in range(KILLS):
        ids = sale_ids(150, prefix=f"KILL{kill}")
        every += ids
        acknowledged |= load_then(daemon, "kill", ids, concurrency=24)
        daemon.start()

    ids, outbox = await stored(daemon)
    assert acknowledged <= ids, f"lost after {KILLS} SIGKILLs: {sorted(acknowledged - ids)[:5]}"
    assert set(outbox.values()) <= {1}, "a record got more than one outbox row"
    # The senders retry all they were not promised; then everything is stored, each once.
    with ThreadPoolExecutor(24) as pool:
        retried = list(pool.map(lambda i: send(daemon, i), every))
    assert all(status == 200 for _, status in retried)
    ids, outbox = await stored(daemon)
    assert ids == set(every)
    assert set(outbox.values()) == {1} and len(outbox) == len(every)


async def test_sigterm_drains_in_flight_requests_and_exits_zero(
    sambung_daemon: Any, hello_site: Path
) -> None:
    daemon = sambung_daemon(CONFIG, env={"PYTHONPATH": str(hello_site)})
    process = daemon.process
    assert process is not None

    acknowledged: set[str] = set()
    with ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(send, daemon, f"TRX-{i:05d}") for i in range(2000)]
        time.sleep(0.5)
        started = time.monotonic()
        process.terminate()
        code = process.wait(timeout=15)
        exit_seconds = time.monotonic() - started
        for future in as_completed(futures):
            transaction_id, status = future.result()
            assert status in (200, 0), f"{transaction_id}: answered {status} while draining"
            if status == 200:
                acknowledged.add(transaction_id)

    assert code == 0, daemon.logs()
    assert 0 < len(acknowledged) < 2000, "SIGTERM should land in the middle of the load"
    assert exit_seconds < 5, f"took {exit_seconds:.1f}s to drain and exit"
    assert '"daemon.stopped"' in daemon.logs()
    daemon.process = None
    daemon.start()
    ids, _ = await stored(daemon)
    assert acknowledged <= ids
    log_lines = [json.loads(line) for line in daemon.logs().splitlines() if line.startswith("{")]
    assert not [line for line in log_lines if line.get("level") == "error"]


def test_a_taken_port_is_a_clear_error_not_a_hang(sambung_daemon: Any, hello_site: Path) -> None:
    first = sambung_daemon(CONFIG, env={"PYTHONPATH": str(hello_site)})
    result = subprocess.run(
        [sys.executable, "-m", "sambung", "run", "-c", str(first.config_path)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=first.workdir,
        env={**os.environ, "PYTHONPATH": str(hello_site)},
        check=False,
    )
    # The file is valid: a taken port is a problem of this moment, named by its setting.
    assert result.returncode == 1
    assert (
        f"sambung: cannot start: server.public.port: port {first.port} on 127.0.0.1 is in use"
        in result.stderr
    )
    assert "configuration is not valid" not in result.stderr
    assert "Traceback" not in result.stderr
