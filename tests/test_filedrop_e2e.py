"""File-drop and CSV upload end to end: `sambung run` as a real process watching its inboxes."""

from __future__ import annotations

import json
import os
import sqlite3
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sambung.clock import SystemClock
from sambung.intake.csvimport import FileImporter
from sambung.store.sqlite import SqliteStore
from sambung.testing import make_connector
from sambung.testing.daemon import DaemonProcess, _send, free_port
from sambung_pawoon.connector import PawoonConnector

from .csvdata import HOSTILE_ROWS, pawoon_export, pawoon_hostile_export

StartDaemon = Callable[..., DaemonProcess]
TOKEN = "admin-token-for-tests-0123"
UPLOAD = "/api/v1/integrations/upload-csv"
PAWOON = {
    "mode": ["webhook", "file-drop"],
    "webhook_secret": "pawoon-secret-for-tests",
    "settle_seconds": 0.5,
    "poll_seconds": 0.1,
    "max_file_bytes": 8 * 1_048_576,
}


def config(admin_port: int = 0, **pawoon: Any) -> dict[str, Any]:
    return {
        "server": {"admin": {"host": "127.0.0.1", "port": admin_port, "token": TOKEN}},
        "outlets": [
            {
                "id": "kemang",
                "name": "Kopi Senja Kemang",
                "timezone": "Asia/Jakarta",
                "connectors": {"pawoon": {**PAWOON, **pawoon}},
            }
        ],
        "sinks": {"books": {"type": "ledger"}},
    }


@pytest.fixture
def env(hello_site: Path) -> dict[str, str]:
    return {"PYTHONPATH": str(hello_site)}


def inbox(daemon: DaemonProcess) -> Path:
    return daemon.workdir / "data" / "inbox" / "kemang" / "pawoon"


def wait_for(condition: Callable[[], bool], what: str, daemon: DaemonProcess) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{daemon.logs()[-3000:]}")
        time.sleep(0.05)


def events(daemon: DaemonProcess, name: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in daemon.logs().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == name]


def table(daemon: DaemonProcess, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(daemon.workdir / "sambung.db") as conn:
        return list(conn.execute(sql))


def test_a_slowly_written_file_is_imported_once_complete_and_a_copy_not_again(
    sambung_daemon: StartDaemon, env: dict[str, str]
) -> None:
    # A generous settle time: a loaded machine may pause the writer longer than one chunk's gap.
    daemon = sambung_daemon(config(settle_seconds=2.0), env=env)
    folder = inbox(daemon)
    wait_for(folder.exists, "the inbox", daemon)
    data = pawoon_export(200)
    with (folder / "senin.csv").open("wb") as handle:
        for start in range(0, len(data), 2000):
            handle.write(data[start : start + 2000])
            handle.flush()
            time.sleep(0.1)  # slower than a scan, much faster than settle_seconds
    wait_for((folder / "processed" / "senin.csv").exists, "the import", daemon)
    assert table(daemon, "SELECT COUNT(*) FROM records") == [(200,)]
    [imported] = events(daemon, "file.imported")
    assert (imported["rows"], imported["imported"], imported["rejected"]) == (200, 200, 0)

    (folder / "senin-lagi.csv").write_bytes(data)
    wait_for((folder / "processed" / "senin-lagi.csv").exists, "the second drop", daemon)
    assert len(events(daemon, "file.imported")) == 1
    assert events(daemon, "file.already_imported")
    assert table(daemon, "SELECT COUNT(*) FROM records") == [(200,)]
    assert table(daemon, "SELECT COUNT(*) FROM outbox") == [(200,)]


def test_bad_rows_land_in_failed_with_an_errors_file_and_symlinks_are_ignored(
    sambung_daemon: StartDaemon, env: dict[str, str]
) -> None:
    daemon = sambung_daemon(config(), env=env)
    folder = inbox(daemon)
    wait_for(folder.exists, "the inbox", daemon)
    (folder / "passwd.csv").symlink_to("/etc/passwd")
    (folder / "selasa.csv").write_bytes(pawoon_export(50, bad={7}))
    wait_for((folder / "failed" / "selasa.csv").exists, "the import", daemon)
    errors = (folder / "failed" / "selasa.csv.errors.csv").read_text(encoding="utf-8")
    assert errors.splitlines()[1].startswith("9,Total,")
    assert table(daemon, "SELECT COUNT(*) FROM records") == [(49,)]
    assert table(daemon, "SELECT stage, field FROM dead_letters") == [("row", "Total")]
    wait_for(lambda: bool(events(daemon, "file.ignored")), "the symlink to be noticed", daemon)
    assert events(daemon, "file.ignored")[0]["reason"] == "symlink"
    assert (folder / "passwd.csv").is_symlink()
    assert "root:" not in daemon.logs()


def test_hostile_cells_are_row_errors_and_the_inbox_goes_on(
    sambung_daemon: StartDaemon, env: dict[str, str]
) -> None:
    port = free_port()
    daemon = sambung_daemon(config(admin_port=port), env=env)
    folder = inbox(daemon)
    wait_for(folder.exists, "the inbox", daemon)
    (folder / "kamis.csv").write_bytes(pawoon_hostile_export(20))
    wait_for((folder / "failed" / "kamis.csv").exists, "the hostile file", daemon)
    errors = (folder / "failed" / "kamis.csv.errors.csv").read_text(encoding="utf-8")
    assert len(errors.splitlines()) == 1 + len(HOSTILE_ROWS)
    assert "'=HYPERLINK" in errors

    # The inbox is not blocked: a file dropped after it is imported, and the daemon is ready;
    # so is one whose name is Latin-1 bytes (a till's USB stick), which no text column holds.
    latin1 = os.fsdecode(b"jumat-caf\xe9.csv")
    (folder / latin1).write_bytes(pawoon_export(10, start=500))
    wait_for((folder / "processed" / latin1).exists, "the next file", daemon)
    assert table(daemon, "SELECT COUNT(*) FROM records") == [(30,)]
    assert table(daemon, "SELECT name FROM imported_files WHERE rows_rejected = 0") == [
        ("jumat-caf\\udce9.csv",)
    ]

    # The upload endpoint, once a 500 for these cells: each is its row's error, in the answer.
    target = {"source_system": "pawoon", "outlet": "kemang"}
    status, body = upload(port, target, ("sabtu.csv", pawoon_hostile_export(4, start=300)))
    assert status == 200, body
    assert (body["imported"], body["rejected"]) == (4, len(HOSTILE_ROWS)), body
    assert [e["row"] for e in body["errors"]] == [4, 5, 6, 7, 8]
    assert table(daemon, "SELECT COUNT(*) FROM records") == [(34,)]
    rejected = table(daemon, "SELECT id FROM dead_letters WHERE stage = 'row'")
    assert len(rejected) == 2 * len(HOSTILE_ROWS)
    # A file name or field the multipart body cannot spell as text: 400 or imported, never 500.
    status, body = upload(port, target, (latin1, pawoon_export(2, start=700)))
    assert (status, body["imported"]) == (200, 2), body
    for fields, name in (
        ({**target, "outlet": os.fsdecode(b"kemang\xff")}, "a.csv"),
        (target, "a\x00b.csv"),
    ):
        status, body = upload(port, fields, (name, pawoon_export(1, start=800)))
        assert status == 400, body
    status, ready = _send(
        urllib.request.Request(
            f"http://127.0.0.1:{port}/readyz", headers={"Authorization": f"Bearer {TOKEN}"}
        )
    )
    assert status == 200, ready
    assert not events(daemon, "loop.crashed")


async def test_sigkill_in_the_middle_of_a_large_file_then_restart_equals_one_import(
    sambung_daemon: StartDaemon, env: dict[str, str], tmp_path: Path
) -> None:
    rows = 50_000
    data = pawoon_export(rows, bad={777, 33_333})
    daemon = sambung_daemon(config(), env=env)
    folder = inbox(daemon)
    wait_for(folder.exists, "the inbox", daemon)
    (folder / "besar.csv").write_bytes(data)
    wait_for(
        lambda: table(daemon, "SELECT COUNT(*) FROM records")[0][0] >= 5000,
        "a first committed batch",
        daemon,
    )
    daemon.kill()
    assert (folder / "besar.csv").exists(), "the import finished before the kill"
    daemon.start()
    wait_for((folder / "failed" / "besar.csv").exists, "the re-import", daemon)

    reference = SqliteStore(tmp_path / "reference.db", synchronous="OFF")
    await reference.open()
    try:
        source = tmp_path / "besar.csv"
        source.write_bytes(data)
        connector = make_connector(PawoonConnector, PAWOON)
        routes = lambda outlet, kind: ("books",)  # noqa: E731
        await FileImporter(reference, routes, SystemClock()).import_path(connector, source)
    finally:
        await reference.close()
    query = "SELECT external_id, fingerprint, revision FROM records ORDER BY external_id"
    with sqlite3.connect(tmp_path / "reference.db") as conn:
        expected = list(conn.execute(query))
        expected_dead = list(conn.execute("SELECT error FROM dead_letters ORDER BY error"))
    assert len(expected) == rows - 2
    assert table(daemon, query) == expected
    assert table(daemon, "SELECT COUNT(*), COUNT(DISTINCT record_id) FROM outbox") == [
        (rows - 2, rows - 2)
    ]
    assert table(daemon, "SELECT error FROM dead_letters ORDER BY error") == expected_dead
    errors = (folder / "failed" / "besar.csv.errors.csv").read_text(encoding="utf-8")
    assert len(errors.splitlines()) == 3


# -- the upload endpoint ---------------------------------------------------------------------


def multipart(fields: dict[str, str], file: tuple[str, bytes] | None) -> tuple[bytes, str]:
    """A multipart body; text given with os.fsdecode goes out as those very bytes."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        disposition = f'Content-Disposition: form-data; name="{name}"'
        parts.append(
            f"--{boundary}\r\n{disposition}\r\n\r\n{value}\r\n".encode("utf-8", "surrogateescape")
        )
    if file is not None:
        filename, content = file
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{filename}"\r\nContent-Type: text/csv\r\n\r\n'.encode(
                "utf-8", "surrogateescape"
            )
            + content
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def upload(
    port: int,
    fields: dict[str, str],
    file: tuple[str, bytes] | None,
    token: str | None = TOKEN,
) -> tuple[int, Any]:
    body, content_type = multipart(fields, file)
    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{UPLOAD}", data=body, method="POST", headers=headers
    )
    return _send(request)


def test_the_upload_endpoint_answers_as_the_seed(
    sambung_daemon: StartDaemon, env: dict[str, str]
) -> None:
    port = free_port()
    daemon = sambung_daemon(config(admin_port=port, max_file_bytes=100_000), env=env)
    target = {"source_system": "pawoon", "outlet": "kemang"}

    status, body = upload(port, target, ("rabu.csv", pawoon_export(20)))
    assert status == 200, body
    assert body == {
        "success": True,
        "imported": 20,
        "errors": [],
        "message": "imported 20 rows",
        "rejected": 0,
        "duplicate": False,
    }

    status, body = upload(port, target, ("kamis.csv", pawoon_export(5, start=100, bad={102})))
    assert status == 200
    assert (body["success"], body["imported"]) == (True, 4)
    [error] = body["errors"]
    assert error["row"] == 4
    assert error["error"].startswith("Total: ")
    assert error["data"]["Transaction ID"] == "PWN-000102"

    status, body = upload(port, target, ("rabu-lagi.csv", pawoon_export(20)))
    assert (status, body["duplicate"], body["imported"]) == (200, True, 20)

    assert upload(port, target, ("foto.jpg", b"\xff\xd8\xff\xe0 JFIF"))[0] == 400
    assert upload(port, target, ("biner.csv", b"\x00\x01\x02"))[0] == 400
    assert upload(port, target, ("kosong.csv", b""))[0] == 400
    assert upload(port, {"outlet": "kemang"}, ("a.csv", pawoon_export(1)))[0] == 400
    assert upload(port, target, None)[0] == 400
    status, body = upload(port, target, ("besar.csv", pawoon_export(3000)))
    assert status == 413, body
    status, body = upload(port, {**target, "outlet": "blok-m"}, ("a.csv", pawoon_export(1)))
    assert status == 404
    status, body = upload(port, target, ("rabu.csv", pawoon_export(20)), token=None)
    assert (status, body["error"]) == (401, "unauthorized")
    status, _ = upload(port, target, ("rabu.csv", pawoon_export(20)), token="wrong-token-1234567")
    assert status == 401
    assert table(daemon, "SELECT COUNT(*) FROM records") == [(24,)]
