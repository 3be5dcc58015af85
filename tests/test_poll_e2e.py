"""Poll mode with the daemon as a real process: SIGKILL in the middle of a multi-page run, then a
restart, ends with the same store as an uninterrupted run; `sambung status` shows it."""

from __future__ import annotations

import asyncio
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sambung.testing.daemon import DaemonProcess, HttpClient, free_port
from sambung.testing.fake_vendor import Seen
from sambung_qasir.fake import QasirFake

KEY = "qasir-e2e-key"
ROWS = 300
PER_PAGE = 50


@contextmanager
def serving(vendor: QasirFake) -> Iterator[str]:
    """Run the fake on its own event loop in a thread (the test's own thread blocks)."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()

    async def main() -> None:
        async with vendor.serve():
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield vendor.url
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


def config(url: str) -> dict[str, Any]:
    return {
        "outlets": [
            {
                "id": "kemang",
                "name": "Kopi Senja Kemang",
                "timezone": "Asia/Jakarta",
                "connectors": {
                    "qasir": {
                        "mode": "poll",
                        "api_key": KEY,
                        "base_url": f"{url}/v1",
                        "per_page": PER_PAGE,
                        "interval": "15s",
                        "timeout": "60s",
                    }
                },
            }
        ],
        "sinks": {"books": {"type": "ledger"}},
    }


def query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    if not db.exists():
        return []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        try:
            return conn.execute(sql).fetchall()
        except sqlite3.OperationalError:
            return []


def wait_for(condition: Any, what: str, timeout: float = 60.0) -> None:
    # Generous: a passing test returns at once, and a loaded machine (PostgreSQL slow to commit)
    # must not fail one that only took longer.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise TimeoutError(what)


def contents(db: Path) -> set[tuple[Any, ...]]:
    return set(query(db, "SELECT external_id, fingerprint, revision FROM records"))


def seeded() -> QasirFake:
    vendor = QasirFake(api_key=KEY)
    vendor.seed(ROWS, datetime.now(UTC) - timedelta(hours=3))
    return vendor


def test_sigkill_mid_run_resumes_from_the_last_committed_page(
    sambung_daemon: Any, hello_site: Path
) -> None:
    env = {"PYTHONPATH": str(hello_site)}
    vendor = seeded()
    served = 0

    def hang_after_three_pages(seen: Seen) -> None:
        nonlocal served
        served += 1
        if served == 3:
            vendor.faults.slow(120.0)

    vendor.after_request = hang_after_three_pages
    with serving(vendor) as url:
        daemon: DaemonProcess = sambung_daemon(config(url), env=env)
        db = daemon.workdir / "sambung.db"
        # Keyset pages overlap by the boundary row, so three pages hold a little under 150.
        wait_for(lambda: len(query(db, "SELECT 1 FROM records")) >= 3 * PER_PAGE - 3, "3 pages")
        time.sleep(0.3)  # the fourth page is hanging at the vendor: the run is mid-way
        [(cursor_at_kill,)] = query(db, "SELECT value FROM cursors")
        assert len(query(db, "SELECT 1 FROM records")) < ROWS
        daemon.kill()

        vendor.after_request = None
        vendor.faults.pending.clear()
        before_restart = len(vendor.requests)
        daemon.start()
        wait_for(lambda: len(query(db, "SELECT 1 FROM records")) == ROWS, "every row")
        wait_for(lambda: query(db, "SELECT state FROM connection_states") == [("ok",)], "state ok")
        resumed_from = datetime.fromisoformat(vendor.requests[before_restart].query["from_date"])
        assert resumed_from >= datetime.fromisoformat(cursor_at_kill) - timedelta(minutes=2)

        outbox = query(db, "SELECT record_id, COUNT(*) FROM outbox GROUP BY record_id")
        assert len(outbox) == ROWS and {n for _, n in outbox} == {1}
        status = subprocess.run(
            [sys.executable, "-m", "sambung", "status", "-c", str(daemon.config_path)],
            capture_output=True,
            text=True,
            env={**daemon.env},
            check=True,
        ).stdout
        assert re.search(rf"^kemang +qasir +poll +ok +{ROWS} ", status, re.MULTILINE), status
        killed = contents(db)
        daemon.terminate()

        # The same vendor, polled by a daemon nobody interrupts.
        clean: DaemonProcess = sambung_daemon(config(url), env=env)
        clean_db = clean.workdir / "sambung.db"
        wait_for(lambda: len(query(clean_db, "SELECT 1 FROM records")) == ROWS, "clean run")
        assert contents(clean_db) == killed
        clean.terminate()


def test_a_refused_key_stops_polling_until_sighup_brings_a_new_one(
    sambung_daemon: Any, hello_site: Path
) -> None:
    vendor = seeded()
    with serving(vendor) as url:
        wrong = config(url)
        wrong["outlets"][0]["connectors"]["qasir"]["api_key"] = "revoked-key"
        admin_port, token = free_port(), "admin-token-for-status-0001"
        wrong.setdefault("server", {})["admin"] = {"port": admin_port, "token": token}
        daemon: DaemonProcess = sambung_daemon(wrong, env={"PYTHONPATH": str(hello_site)})
        db = daemon.workdir / "sambung.db"
        wait_for(
            lambda: query(db, "SELECT state FROM connection_states") == [("needs_reauth",)],
            "needs_reauth",
        )
        status = subprocess.run(
            [sys.executable, "-m", "sambung", "status", "-c", str(daemon.config_path)],
            capture_output=True,
            text=True,
            env={**daemon.env},
            check=True,
        ).stdout
        assert "needs_reauth" in status and "401" in status
        answer = HttpClient(f"http://127.0.0.1:{admin_port}").get(
            "/api/v1/status", {"Authorization": f"Bearer {token}"}
        )[1]
        [qasir] = [c for c in answer["connections"] if c["connector"] == "qasir"]
        assert qasir["state"] == "needs_reauth" and "401" in qasir["poll"]["last_error"]
        refused = len(vendor.requests)
        time.sleep(1.0)
        assert len(vendor.requests) == refused, "no requests while the key is refused"

        text = daemon.config_path.read_text(encoding="utf-8")
        daemon.config_path.write_text(text.replace("revoked-key", KEY), encoding="utf-8")
        assert daemon.process is not None
        daemon.process.send_signal(signal.SIGHUP)
        wait_for(lambda: len(query(db, "SELECT 1 FROM records")) == ROWS, "resumed")
        wait_for(lambda: query(db, "SELECT state FROM connection_states") == [("ok",)], "ok")
        assert daemon.logs().count('"poll.needs_reauth"') == 1
        daemon.terminate()
