"""Backup and restore with the daemon as a real process.

A daemon polls a fake Moka under OAuth tokens it refreshed itself (encrypted under its key
file) and takes webhooks the whole time `sambung backup` runs. Then the data folder is wiped,
the backup restored, and the daemon started again: the cursor is the one in the snapshot, the
poll goes on with the restored tokens (a refresh with the rotated refresh token, no reauth),
and every webhook acknowledged before the backup started is stored. Then each refusal.
"""

from __future__ import annotations

import asyncio
import io
import json
import secrets
import shutil
import sqlite3
import tarfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sambung.testing.daemon import DaemonProcess
from sambung_moka.fake import MokaFake

from .payloads import MOKA_SECRET, WEBHOOKS, moka_event, signed

MOKA_HEADER = "X-Moka-Signature"
KEMANG = {"id": "kemang", "name": "Kemang"}


def config(vendor_url: str) -> dict[str, Any]:
    """Moka at kemang, polled (OAuth, seeded tokens) and taking webhooks; data in ./data."""
    return {
        "store": {"url": "sqlite:///./data/sambung.db"},
        "outlets": [
            {
                "id": "kemang",
                "name": "Kemang",
                "connectors": {
                    "moka": {
                        "mode": ["poll", "webhook"],
                        "outlet_id": "41230",
                        "client_id": "moka-client",
                        "client_secret": "moka-client-secret",
                        "access_token": "moka-access",
                        "refresh_token": "moka-refresh",
                        "webhook_secret": MOKA_SECRET,
                        "base_url": vendor_url,
                        "interval": "15s",
                    }
                },
            }
        ],
    }


def query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute(sql).fetchall()


def ok_polls(vendor: MokaFake) -> int:
    return sum(1 for r in vendor.data_requests() if r.status == 200)


async def until(condition: Any, what: str, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.1)


class Webhooks(threading.Thread):
    """Posts signed Moka webhooks one after another until stopped; remembers the acknowledged."""

    def __init__(self, daemon: DaemonProcess) -> None:
        super().__init__(daemon=True)
        self.client = daemon
        self.acked: list[int] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        sequence = 0
        while not self.stopping.is_set():
            sequence += 1
            transaction = 500_000 + sequence
            body = moka_event(f"evt-backup-{sequence}", transaction)
            status, _ = self.client.post(
                f"{WEBHOOKS}/moka", body, signed(body, MOKA_SECRET, MOKA_HEADER)
            )
            if status == 200:
                self.acked.append(transaction)


async def test_backup_while_ingesting_then_restore_resumes(tmp_path: Path) -> None:
    vendor = MokaFake()
    vendor.seed(3, datetime.now(UTC) - timedelta(minutes=30))
    # The seeded access token is dead from the start: the daemon refreshes, and the vendor
    # rotates the refresh token, so only the store (under the key file) holds working tokens.
    vendor.expire_tokens()
    archive = tmp_path / "backups" / "sambung.tar.gz"
    async with vendor.serve():
        (tmp_path / "daemon").mkdir()
        daemon = DaemonProcess(tmp_path / "daemon", config(vendor.url))
        data = daemon.workdir / "data"
        db = data / "sambung.db"
        await asyncio.to_thread(daemon.start)
        try:
            await until(lambda: ok_polls(vendor) >= 1, "a first good poll")
            assert vendor.refresh_calls == 1
            await until(lambda: len(query(db, "SELECT 1 FROM cursors")) == 1, "a cursor")
            posting = Webhooks(daemon)
            posting.start()
            await until(lambda: len(posting.acked) >= 20, "webhooks acknowledged")
            acked_before = list(posting.acked)
            made = await asyncio.to_thread(daemon.cli, "backup", str(archive))
            await until(lambda: len(posting.acked) >= len(acked_before) + 20, "more webhooks")
            posting.stopping.set()
            posting.join(10)
        finally:
            await asyncio.to_thread(daemon.terminate)
        assert made.returncode == 0, made.stderr
        assert "schema version" in made.stdout
        assert archive.stat().st_mode & 0o777 == 0o600
        snapshot = tmp_path / "snapshot.db"
        with tarfile.open(archive) as tar:
            names = tar.getnames()
            manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
            snapshot.write_bytes(tar.extractfile("sambung.db").read())  # type: ignore[union-attr]
        assert names == ["manifest.json", "sambung.db", "secret.key"]
        assert manifest["key"]["source"] == "file"
        assert manifest["config"]["connections"] == ["kemang/moka"]
        assert set(manifest["members"]) == {"sambung.db", "secret.key"}
        cursors = query(snapshot, "SELECT * FROM cursors")
        assert cursors
        key = (data / "secret.key").read_bytes()

        shutil.rmtree(data)
        put = await asyncio.to_thread(daemon.cli, "restore", str(archive))
        assert put.returncode == 0, put.stderr
        assert (data / "secret.key").read_bytes() == key
        assert (data / "secret.key").stat().st_mode & 0o777 == 0o600
        assert query(db, "SELECT * FROM cursors") == cursors
        stored = {int(e) for (e,) in query(db, "SELECT external_id FROM records")}
        assert set(acked_before) <= stored, "an acknowledged webhook is missing"

        # Tokens expire again: the restored refresh token (rotated after the seed) must work.
        vendor.expire_tokens()
        before = ok_polls(vendor)
        await asyncio.to_thread(daemon.start)
        try:
            await until(lambda: ok_polls(vendor) > before, "a good poll after the restore")
        finally:
            await asyncio.to_thread(daemon.terminate)
    assert vendor.refresh_calls == 2
    states = query(db, "SELECT mode, state FROM connection_states")
    assert ("poll", "ok") in states, states
    assert "needs_reauth" not in daemon.logs()
    assert len(query(db, "SELECT 1 FROM records WHERE external_id LIKE '7%'")) == 3
    assert key.decode().strip() not in made.stdout + put.stdout + daemon.logs()


# -- refusals ------------------------------------------------------------------------------------


@pytest.fixture
def backed_up(tmp_path: Path) -> tuple[DaemonProcess, Path]:
    """A config whose store exists (migrated, a key file made), and a backup of it."""
    daemon = DaemonProcess(
        tmp_path, {"store": {"url": "sqlite:///./data/sambung.db"}, "outlets": [KEMANG]}
    )
    assert daemon.cli("migrate").returncode == 0
    (tmp_path / "data" / "secret.key").write_text("k" * 43 + "\n")
    (tmp_path / "data" / "secret.key").chmod(0o600)
    archive = tmp_path / "b.tar.gz"
    made = daemon.cli("backup", str(archive))
    assert made.returncode == 0, made.stderr
    return daemon, archive


def rewrite(archive: Path, change: Any) -> None:
    """Rewrite `archive` with `change(name, bytes) -> bytes` applied to each member."""
    with tarfile.open(archive) as tar:
        members = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]  # type: ignore[union-attr]
    with tarfile.open(archive, "w:gz") as tar:
        for name, content in members:
            content = change(name, content)
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))


def refused(daemon: DaemonProcess, archive: Path, *extra: str) -> str:
    put = daemon.cli("restore", str(archive), *extra)
    assert put.returncode == 1, (put.stdout, put.stderr)
    assert "Traceback" not in put.stderr and len(put.stderr.strip().splitlines()) == 1
    return put.stderr


def test_restore_refuses_an_existing_store_without_force(
    backed_up: tuple[DaemonProcess, Path],
) -> None:
    daemon, archive = backed_up
    assert "give --force" in refused(daemon, archive)
    forced = daemon.cli("restore", str(archive), "--force")
    assert forced.returncode == 0, forced.stderr
    aside = list((daemon.workdir / "data").glob("before-restore-*/sambung.db"))
    assert len(aside) == 1 and (daemon.workdir / "data" / "sambung.db").exists()


def test_restore_refuses_a_damaged_member(backed_up: tuple[DaemonProcess, Path]) -> None:
    daemon, archive = backed_up
    shutil.rmtree(daemon.workdir / "data")
    rewrite(archive, lambda name, b: b[:-1] + b"x" if name == "sambung.db" else b)
    assert "does not match its checksum" in refused(daemon, archive)
    archive.write_bytes(archive.read_bytes()[:200])
    assert "sambung restore:" in refused(daemon, archive)
    assert not (daemon.workdir / "data" / "sambung.db").exists()


def test_restore_refuses_a_newer_schema(backed_up: tuple[DaemonProcess, Path]) -> None:
    daemon, archive = backed_up
    shutil.rmtree(daemon.workdir / "data")

    def newer(name: str, content: bytes) -> bytes:
        if name != "manifest.json":
            return content
        manifest = json.loads(content)
        manifest["store"]["schema_version"] = 9999
        return json.dumps(manifest).encode()

    rewrite(archive, newer)
    assert "newer than this sambung knows" in refused(daemon, archive)


def test_restore_refuses_while_the_store_is_in_use(
    backed_up: tuple[DaemonProcess, Path],
) -> None:
    daemon, archive = backed_up
    daemon.start()
    try:
        assert "in use by a running sambung" in refused(daemon, archive, "--force")
    finally:
        daemon.terminate()


def test_backup_refuses_a_postgresql_store(tmp_path: Path) -> None:
    daemon = DaemonProcess(
        tmp_path, {"store": {"url": "postgresql://sambung@127.0.0.1/sambung"}, "outlets": [KEMANG]}
    )
    made = daemon.cli("backup", str(tmp_path / "b.tar.gz"))
    assert made.returncode == 1 and "pg_dump" in made.stderr and "README" in made.stderr


def test_a_key_from_the_environment_is_named_but_never_written(tmp_path: Path) -> None:
    key = secrets.token_urlsafe(32)
    daemon = DaemonProcess(
        tmp_path,
        {"store": {"url": "sqlite:///./data/sambung.db"}, "outlets": [KEMANG]},
        env={"SAMBUNG_SECRET_KEY": key},
    )
    assert daemon.cli("migrate").returncode == 0
    made = daemon.cli("backup", str(tmp_path / "b.tar.gz"))
    assert made.returncode == 0, made.stderr
    assert "SAMBUNG_SECRET_KEY" in made.stdout
    with tarfile.open(tmp_path / "b.tar.gz") as tar:
        assert tar.getnames() == ["manifest.json", "sambung.db"]
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert manifest["key"] == {"source": "environment", "path": None}
    shutil.rmtree(tmp_path / "data")
    put = daemon.cli("restore", str(tmp_path / "b.tar.gz"))
    assert put.returncode == 0, put.stderr
    assert "SAMBUNG_SECRET_KEY when this backup was made" in put.stdout
    assert not (tmp_path / "data" / "secret.key").exists()
