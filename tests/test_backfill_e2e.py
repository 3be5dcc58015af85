"""Backfills and cursors with the daemon as a real process, on SQLite and on PostgreSQL: a
backfill SIGKILLed mid-window resumes and finishes with every record once; a cursor set through
the daemon while it runs is where its next poll starts."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sambung.store import open_store
from sambung.testing.daemon import DaemonProcess, HttpClient, free_port
from sambung.testing.fake_vendor import Seen
from sambung_qasir.fake import QasirFake

from .test_poll_e2e import KEY, serving, wait_for

ROWS = 300
PER_PAGE = 50
TOKEN = "admin-token-for-backfill-0001"


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return "sqlite:///./sambung.db"
    return str(request.getfixturevalue("postgres_url"))


def config(url: str, store_url: str, admin_port: int, **qasir: Any) -> dict[str, Any]:
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
                        "interval": "1h",  # only the start-up run and the runs it is woken for
                        "lookback": "1h",
                        "timeout": "60s",
                        **qasir,
                    }
                },
            }
        ],
        "sinks": {"books": {"type": "ledger"}},
        "store": {"url": store_url},
        "server": {"admin": {"port": admin_port, "token": TOKEN}},
        # On PostgreSQL a killed daemon's lease must expire before its restart polls again.
        "replicas": {"lease_ttl": "3s"},
    }


class Admin(HttpClient):
    """The daemon's admin API, with its token."""

    def ask(self, path: str) -> Any:
        status, body = self.get(path, {"Authorization": f"Bearer {TOKEN}"})
        assert status == 200, (status, body)
        return body


def stored(store_url: str, workdir: Path) -> tuple[int, list[int], Any]:
    """Records, outbox rows per record, and the live cursor, read from the store itself."""

    async def read() -> tuple[int, list[int], Any]:
        store = open_store(store_url, base_dir=workdir)
        await store.open()
        try:
            records = await store.list_records(limit=10_000)
            per_record: dict[int, int] = {}
            for row in await store.list_outbox(limit=10_000):
                per_record[row.record_id] = per_record.get(row.record_id, 0) + 1
            cursor = await store.get_cursor_state("kemang", "qasir")
            return len(records), sorted(set(per_record.values())), cursor
        finally:
            await store.close()

    return asyncio.run(read())


def test_a_backfill_killed_mid_window_resumes_and_finishes(
    sambung_daemon: Any, hello_site: Path, store_url: str
) -> None:
    now = datetime.now(UTC)
    vendor = QasirFake(api_key=KEY)
    # Older than the live poll's lookback: only the backfill reads them.
    vendor.seed(ROWS, now - timedelta(hours=5))
    backfill_pages = 0

    def hang_after_three_backfill_pages(seen: Seen) -> None:
        nonlocal backfill_pages
        asked = datetime.fromisoformat(seen.query.get("from_date", now.isoformat()))
        if asked < now - timedelta(hours=2):
            backfill_pages += 1
            if backfill_pages == 3:
                # Long enough to be killed waiting; short enough not to hold the fake's
                # shutdown at the end of the test.
                vendor.faults.slow(5.0)

    vendor.after_request = hang_after_three_backfill_pages
    admin_port = free_port()
    with serving(vendor) as url:
        daemon: DaemonProcess = sambung_daemon(
            config(url, store_url, admin_port), env={"PYTHONPATH": str(hello_site)}
        )
        admin = Admin(f"http://127.0.0.1:{admin_port}")
        since = (now - timedelta(hours=6)).isoformat()
        asked = daemon.cli("backfill", "kemang", "qasir", "--since", since, "--no-wait", "--json")
        assert asked.returncode == 0, asked.stderr
        task = json.loads(asked.stdout)
        path = f"/api/v1/backfills/{task['id']}"
        wait_for(lambda: admin.ask(path)["pages"] >= 3, "three backfill pages")
        time.sleep(0.3)  # the fourth page hangs at the vendor: the backfill is mid-window
        at_kill = admin.ask(path)
        assert at_kill["state"] == "running" and at_kill["records_new"] < ROWS
        daemon.kill()

        # With the daemon down, the list still reads the store.
        listed = daemon.cli("backfill", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        [kept] = [json.loads(line) for line in listed.stdout.splitlines()]
        assert (kept["state"], kept["pages"]) == ("running", at_kill["pages"])
        refused = daemon.cli("backfill", "kemang", "qasir", "--since", since)
        assert refused.returncode == 1 and "needs the running daemon" in refused.stderr

        vendor.after_request = None
        vendor.faults.pending.clear()
        daemon.start()
        wait_for(lambda: admin.ask(path)["state"] == "done", "the backfill done")
        done = admin.ask(path)

        # The same window again, followed to its end: every record unchanged, nothing queued.
        again = daemon.cli("backfill", "kemang", "qasir", "--since", since)
        assert again.returncode == 0, again.stderr
        *progress, summary = again.stdout.splitlines()
        assert progress[-1].startswith("100% done: pages ")
        assert summary.startswith(f"backfill #{task['id'] + 1} done: pages ")
        assert summary.endswith(f"new 0, changed 0, unchanged {ROWS}"), summary
        status = admin.ask("/api/v1/status")
        assert [b["id"] for b in status["backfills"]] == [task["id"] + 1, task["id"]]
        daemon.terminate()

    # Every row once, each queued once; the pages before the kill were not read again.
    assert done["records_new"] == ROWS and done["records_changed"] == 0
    assert done["records_unchanged"] <= ROWS // PER_PAGE + 2, "only page boundaries re-read"
    records, outbox_per_record, cursor = stored(store_url, daemon.workdir)
    assert records == ROWS and outbox_per_record == [1]
    # The live cursor never moved into the window (the live poll found nothing newer).
    assert cursor is None or datetime.fromisoformat(cursor.value) > now - timedelta(hours=1)
    assert '"backfill.resumed"' in daemon.logs()


def test_a_cursor_set_while_the_daemon_runs_is_its_next_poll_s_start(
    sambung_daemon: Any, hello_site: Path, store_url: str
) -> None:
    now = datetime.now(UTC)
    vendor = QasirFake(api_key=KEY)
    vendor.seed(20, now - timedelta(minutes=30))
    admin_port = free_port()
    with serving(vendor) as url:
        daemon: DaemonProcess = sambung_daemon(
            config(url, store_url, admin_port, overlap="0s"), env={"PYTHONPATH": str(hello_site)}
        )
        admin = Admin(f"http://127.0.0.1:{admin_port}")

        def polled() -> dict[str, Any]:
            [found] = admin.ask("/api/v1/status")["connections"]
            return found

        wait_for(lambda: polled()["state"] == "ok", "the first poll")
        first_cursor = polled()["poll"]["cursor"]
        before = len(vendor.requests)
        rewound = (now - timedelta(hours=3)).replace(microsecond=0)

        moved = daemon.cli("cursor", "set", "kemang", "qasir", rewound.isoformat(), "--reason", "t")
        assert moved.returncode == 0, moved.stderr
        assert f"{first_cursor} -> {rewound.isoformat()}" in moved.stdout

        # Woken by the change, the loop polls from the operator's cursor (not in an hour).
        wait_for(lambda: len(vendor.requests) > before, "the next poll")
        asked = datetime.fromisoformat(vendor.requests[before].query["from_date"])
        assert asked == rewound
        shown = daemon.cli("cursor", "show", "kemang", "qasir", "--json")
        assert shown.returncode == 0, shown.stderr
        view = json.loads(shown.stdout)
        [change] = view["history"]
        assert (change["before"], change["after"], change["reason"]) == (
            first_cursor,
            rewound.isoformat(),
            "t",
        )
        assert change["actor"].startswith("operator:")
        wait_for(lambda: polled()["poll"]["cursor"] == first_cursor, "the cursor back in front")

        # A reset: the next poll starts `lookback` (1h) before now, as a first one would.
        before = len(vendor.requests)
        reset = daemon.cli("cursor", "reset", "kemang", "qasir")
        assert reset.returncode == 0, reset.stderr
        wait_for(lambda: len(vendor.requests) > before, "the poll after the reset")
        asked = datetime.fromisoformat(vendor.requests[before].query["from_date"])
        assert now - timedelta(hours=1, minutes=1) < asked < datetime.now(UTC)
        daemon.terminate()

    refused = daemon.cli("cursor", "set", "kemang", "qasir", rewound.isoformat())
    assert refused.returncode == 1 and "needs the running daemon" in refused.stderr
