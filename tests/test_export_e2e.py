"""Moving up, end to end: a daemon polls and delivers on SQLite, `sambung export` copies the store
into PostgreSQL, and a daemon on PostgreSQL carries on from the same cursor and re-delivers
nothing that was delivered before."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sambung.testing.daemon import DaemonProcess
from sambung_qasir.fake import QasirFake

from .test_poll_e2e import KEY, query, serving, wait_for
from .test_poll_e2e import config as poll_config

ROWS = 120


def config(url: str, deliveries: Path) -> dict[str, Any]:
    return {**poll_config(url), "sinks": {"lake": {"type": "jsonl", "path": str(deliveries)}}}


def delivered(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [json.loads(line)["id"] for line in path.read_text(encoding="utf-8").splitlines()]


def export(config_path: Path, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sambung", "export", "-c", str(config_path), "--to", url],
        capture_output=True,
        text=True,
        timeout=120,
    )


def postgres(url: str, sql: str) -> list[Any]:
    async def fetch() -> list[Any]:
        conn = await asyncpg.connect(url)
        try:
            return list(await conn.fetch(sql))
        finally:
            await conn.close()

    return asyncio.run(fetch())


def test_export_then_run_on_postgresql_continues_and_redelivers_nothing(
    sambung_daemon: Any, postgres_url: str, tmp_path: Path
) -> None:
    deliveries = tmp_path / "deliveries.jsonl"
    vendor = QasirFake(api_key=KEY)
    now = datetime.now(UTC)
    vendor.seed(ROWS, now - timedelta(hours=3))
    with serving(vendor) as url:
        on_sqlite: DaemonProcess = sambung_daemon(config(url, deliveries))
        db = on_sqlite.workdir / "sambung.db"
        wait_for(lambda: len(delivered(deliveries)) == ROWS, "every sale delivered from SQLite")
        on_sqlite.terminate()
        [(cursor,)] = query(db, "SELECT value FROM cursors")

        exported = export(on_sqlite.config_path, postgres_url)
        assert exported.returncode == 0, exported.stderr
        copied = dict(line.split()[:2] for line in exported.stdout.splitlines() if "rows" in line)
        assert copied["records"] == str(ROWS) and copied["cursors"] == "1"
        assert copied["outbox"] == str(ROWS)
        again = export(on_sqlite.config_path, postgres_url)
        assert again.returncode == 2 and "already holds rows" in again.stderr

        # Meanwhile at the vendor: new sales, and one old sale corrected.
        for n in range(20):
            vendor.sale(ROWS + 1 + n, now - timedelta(hours=1) + timedelta(seconds=30 * n))
        vendor.update("QSR-0000005", now, total=1)
        before = len(vendor.requests)
        on_postgres: DaemonProcess = sambung_daemon(
            {**config(url, deliveries), "store": {"url": postgres_url}}
        )
        wait_for(
            lambda: len(delivered(deliveries)) == ROWS + 21, "the new sales and the correction"
        )
        wait_for(
            lambda: postgres(postgres_url, "SELECT state FROM connection_states")[0][0] == "ok",
            "a finished poll run on PostgreSQL",
        )
        on_postgres.terminate()

    ids = delivered(deliveries)
    assert len(ids) == len(set(ids)) == ROWS + 21, "nothing delivered twice"
    resumed_from = datetime.fromisoformat(vendor.requests[before].query["from_date"])
    assert resumed_from >= datetime.fromisoformat(cursor) - timedelta(minutes=10)
    assert resumed_from > now - timedelta(hours=3), "it did not start polling from scratch"
    [(records,)] = postgres(postgres_url, "SELECT COUNT(*) FROM records")
    assert records == ROWS + 20
    [(revisions,)] = postgres(postgres_url, "SELECT COUNT(*) FROM records WHERE revision = 2")
    assert revisions == 1
