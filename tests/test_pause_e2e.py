"""Pause, resume and recent runs with the daemon as a real process, on SQLite and PostgreSQL:
`sambung pause` stops the polls (a wake by a cursor set or a backfill asks the vendor nothing),
`sambung resume` polls again and runs the backfill that waited, and `sambung runs` lists every
run with its outcome, a failed one included."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sambung.testing.daemon import DaemonProcess, free_port
from sambung_qasir.fake import QasirFake

from .test_backfill_e2e import Admin, config, store_url  # noqa: F401
from .test_poll_e2e import KEY, serving, wait_for


@contextmanager
def polled(
    sambung_daemon: Any, hello_site: Path, url_of_store: str, rows: int, **qasir: Any
) -> Iterator[tuple[QasirFake, DaemonProcess, Admin]]:
    """A daemon polling kemang's fake Qasir (its `rows` half an hour old), and its admin API."""
    vendor = QasirFake(api_key=KEY)
    vendor.seed(rows, datetime.now(UTC) - timedelta(minutes=30))
    admin_port = free_port()
    with serving(vendor) as url:
        daemon: DaemonProcess = sambung_daemon(
            config(url, url_of_store, admin_port, **qasir), env={"PYTHONPATH": str(hello_site)}
        )
        yield vendor, daemon, Admin(f"http://127.0.0.1:{admin_port}")


def test_pause_stops_the_polls_resume_restarts_them_and_runs_are_listed(
    sambung_daemon: Any,
    hello_site: Path,
    store_url: str,  # noqa: F811
) -> None:
    now = datetime.now(UTC)
    with polled(sambung_daemon, hello_site, store_url, 10, retries=0) as (vendor, daemon, admin):

        def runs() -> list[dict[str, Any]]:
            shown = daemon.cli("runs", "kemang", "qasir", "--json")
            assert shown.returncode == 0, shown.stderr
            return [json.loads(line) for line in shown.stdout.splitlines()]

        def connection() -> dict[str, Any]:
            [found] = admin.ask("/api/v1/status")["connections"]
            return found

        wait_for(lambda: len(runs()) == 1, "the start-up run")
        # A failing vendor: the run a cursor set wakes fails, and is listed as failed.
        vendor.faults.fail(500, times=1)
        rewound = (now - timedelta(minutes=45)).replace(microsecond=0).isoformat()
        assert daemon.cli("cursor", "set", "kemang", "qasir", rewound).returncode == 0
        wait_for(lambda: len(runs()) == 2, "the failed run")

        paused = daemon.cli("pause", "kemang", "qasir", "--reason", "till replaced")
        assert paused.returncode == 0, paused.stderr
        assert "paused by operator:" in paused.stdout
        pause = connection()["pause"]
        assert connection()["state"] == "paused" and pause["reason"] == "till replaced"
        before = len(vendor.requests)
        # Both wake the loop; paused, it asks the vendor nothing.
        assert daemon.cli("cursor", "set", "kemang", "qasir", rewound).returncode == 0
        wait_for(lambda: '"poll.paused"' in daemon.logs(), "the woken loop finding the pause")
        since = (now - timedelta(hours=2)).isoformat()
        asked = daemon.cli("backfill", "kemang", "qasir", "--since", since, "--no-wait")
        assert asked.returncode == 0, asked.stderr
        time.sleep(1.0)  # what a woken loop would ask would be asked by now
        assert len(vendor.requests) == before and len(runs()) == 2

        resumed = daemon.cli("resume", "kemang", "qasir")
        assert resumed.returncode == 0, resumed.stderr
        wait_for(lambda: len(runs()) == 4, "the live run and the backfill after the resume")
        assert connection()["state"] == "ok" and not connection()["pause"]["paused"]
        table = daemon.cli("runs", "kemang", "qasir")
        daemon.terminate()

    backfill, live, failed, first = runs()
    assert (first["kind"], first["outcome"], first["records_new"]) == ("live", "ok", 10)
    assert failed["outcome"] == "failed" and "500" in failed["error"]
    assert failed["cursor_before"] == rewound
    assert (live["kind"], live["outcome"]) == ("live", "ok")
    assert (backfill["kind"], backfill["outcome"]) == ("backfill", "ok")
    assert table.returncode == 0 and table.stdout.splitlines()[0].split()[:3] == [
        "STARTED",
        "KIND",
        "OUTCOME",
    ]
    assert "failed" in table.stdout


def test_a_pause_outlives_a_restart(
    sambung_daemon: Any,
    hello_site: Path,
    store_url: str,  # noqa: F811
) -> None:
    with polled(sambung_daemon, hello_site, store_url, 5) as (vendor, daemon, admin):

        def state() -> str:
            [found] = admin.ask("/api/v1/status")["connections"]
            return str(found["state"])

        wait_for(lambda: state() == "ok", "the start-up run")
        assert daemon.cli("pause", "kemang", "qasir").returncode == 0
        daemon.terminate()
        before, told = len(vendor.requests), daemon.logs().count('"poll.paused"')

        daemon.start()  # a start-up run would poll at once: paused, it does not
        wait_for(lambda: daemon.logs().count('"poll.paused"') > told, "the paused first cycle")
        assert state() == "paused" and len(vendor.requests) == before
        assert daemon.cli("resume", "kemang", "qasir").returncode == 0
        wait_for(lambda: len(vendor.requests) > before, "the poll after the resume")
        daemon.terminate()
    assert '"poll.resumed"' in daemon.logs()
