"""The inbox runner in process: settling, duplicates, bad rows, policies and unsafe entries."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from sambung.clock import SystemClock
from sambung.intake.csvfiles import RowError
from sambung.intake.csvimport import ErrorsFile, FileImporter
from sambung.intake.filedrop import InboxWatcher
from sambung.store import DeadLetterQuery, Store
from sambung.testing import make_connector
from sambung_pawoon.connector import PawoonConnector

from .csvdata import HOSTILE_ROWS, pawoon_export, pawoon_hostile_export


class FakeTime:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def watcher(store: Store, inbox: Path, time: FakeTime, **settings: Any) -> InboxWatcher:
    connector = make_connector(
        PawoonConnector,
        {"mode": ["file-drop"], "webhook_secret": "s" * 16, "settle_seconds": 2, **settings},
    )
    importer = FileImporter(store, lambda outlet, kind: ("books",), SystemClock(), batch_rows=7)
    inbox.mkdir(parents=True, exist_ok=True)
    return InboxWatcher(connector, importer, inbox, monotonic=time)


async def stored_ids(store: Store) -> list[str]:
    return sorted(r.external_id for r in await store.list_records(limit=10_000))


async def test_a_file_is_imported_once_it_stopped_growing(store: Store, tmp_path: Path) -> None:
    time, inbox = FakeTime(), tmp_path / "inbox"
    runner = watcher(store, inbox, time)
    data = pawoon_export(20)
    path = inbox / "sales.csv"
    path.write_bytes(data[:300])
    assert await runner.scan_once() == []
    time.now += 5
    with path.open("ab") as handle:  # still being written
        handle.write(data[300:])
    os.utime(path, ns=(1, 1))
    assert await runner.scan_once() == []
    time.now += 1
    assert await runner.scan_once() == []  # unchanged, but not for settle_seconds yet
    time.now += 1
    [report] = await runner.scan_once()
    assert (report.rows, report.imported, report.rejected) == (20, 20, 0)
    assert (inbox / "processed" / "sales.csv").read_bytes() == data
    assert not path.exists()
    assert len(await stored_ids(store)) == 20


async def test_the_same_file_dropped_twice_imports_once(store: Store, tmp_path: Path) -> None:
    time, inbox = FakeTime(), tmp_path / "inbox"
    runner = watcher(store, inbox, time)
    for name in ("monday.csv", "monday-copy.csv"):
        (inbox / name).write_bytes(pawoon_export(10))
        await runner.scan_once()
        time.now += 3
        [report] = await runner.scan_once()
        assert (inbox / "processed" / name).exists()
    assert report.duplicate
    assert len(await stored_ids(store)) == 10
    assert len(await store.list_outbox()) == 10


async def test_bad_rows_are_skipped_and_explained(store: Store, tmp_path: Path) -> None:
    time, inbox = FakeTime(), tmp_path / "inbox"
    runner = watcher(store, inbox, time)
    (inbox / "tuesday.csv").write_bytes(pawoon_export(12, bad={3, 10}))
    await runner.scan_once()
    time.now += 3
    [report] = await runner.scan_once()
    assert (report.imported, report.rejected) == (10, 2)
    assert (inbox / "failed" / "tuesday.csv").exists()
    with (inbox / "failed" / "tuesday.csv.errors.csv").open(encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["row", "column", "reason", "Date", "Transaction ID", "Total", "Tax", "Items"]
    assert [(r[0], r[1], r[4]) for r in rows[1:]] == [
        ("5", "Total", "PWN-000003"),
        ("12", "Total", "PWN-000010"),
    ]
    assert "Rp 27.500,-" in rows[1][2]
    assert len(await stored_ids(store)) == 10
    dead = await store.find_dead_letters(DeadLetterQuery(stage="row"))
    assert sorted(d.error.split(":")[0] for d in dead) == ["row 12", "row 5"]


async def test_reject_file_imports_nothing_from_a_file_with_a_bad_row(
    store: Store, tmp_path: Path
) -> None:
    time, inbox = FakeTime(), tmp_path / "inbox"
    runner = watcher(store, inbox, time, on_row_error="reject_file")
    (inbox / "wednesday.csv").write_bytes(pawoon_export(30, bad={25}))
    await runner.scan_once()
    time.now += 3
    [report] = await runner.scan_once()
    assert (report.imported, report.rejected) == (0, 1)
    assert (inbox / "failed" / "wednesday.csv.errors.csv").exists()
    assert await stored_ids(store) == []


async def test_symlinks_folders_and_temporary_files_are_left_alone(
    store: Store, tmp_path: Path
) -> None:
    time, inbox = FakeTime(), tmp_path / "inbox"
    runner = watcher(store, inbox, time)
    (inbox / "passwd.csv").symlink_to("/etc/passwd")
    (inbox / "nested").mkdir()
    (inbox / "nested" / "inner.csv").write_bytes(pawoon_export(3))
    for name in (".~lock.sales.csv#", "sales.csv.part", "upload.tmp", ".hidden.csv"):
        (inbox / name).write_bytes(pawoon_export(3))
    for _ in range(3):
        assert await runner.scan_once() == []
        time.now += 5
    assert (inbox / "passwd.csv").is_symlink()
    assert await stored_ids(store) == []


async def test_a_file_that_is_not_csv_text_fails_whole(store: Store, tmp_path: Path) -> None:
    time, inbox = FakeTime(), tmp_path / "inbox"
    runner = watcher(store, inbox, time)
    (inbox / "empty.csv").write_bytes(b"")
    await runner.scan_once()
    time.now += 3
    [report] = await runner.scan_once()
    assert report.file_error is not None
    errors = (inbox / "failed" / "empty.csv.errors.csv").read_text(encoding="utf-8")
    assert "empty" in errors


def sambung_import(folder: Path, *names: str) -> subprocess.CompletedProcess[str]:
    """`sambung import` of `names` into kemang's Pawoon file-drop connection, in `folder`."""
    config = folder / "sambung.yaml"
    if not config.exists():
        config.write_text(
            "store: {url: 'sqlite:///./s.db'}\n"
            "log: {level: warning, format: json}\n"
            "outlets:\n"
            "  - id: kemang\n"
            "    name: Kemang\n"
            "    connectors:\n"
            "      pawoon: {mode: file-drop}\n",
            encoding="utf-8",
        )
    command = [sys.executable, "-m", "sambung", "import", "-c", "sambung.yaml"]
    command += ["--outlet", "kemang", "--connector", "pawoon", *names]
    return subprocess.run(command, cwd=folder, capture_output=True, text=True, check=False)


def test_sambung_import_prints_a_summary_and_fails_on_rejected_rows(tmp_path: Path) -> None:
    (tmp_path / "good.csv").write_bytes(pawoon_export(30))
    (tmp_path / "bad.csv").write_bytes(pawoon_export(5, start=100, bad={101}))

    def run(*names: str) -> subprocess.CompletedProcess[str]:
        return sambung_import(tmp_path, *names)

    clean = run("good.csv")
    assert clean.returncode == 0, clean.stderr
    assert "good.csv" in clean.stdout and " ok" in clean.stdout
    mixed = run("good.csv", "bad.csv")
    assert mixed.returncode == 1
    lines = mixed.stdout.splitlines()
    assert "already imported" in lines[1]
    assert lines[2].split()[:4] == ["bad.csv", "5", "4", "1"]
    errors = (tmp_path / "bad.csv.errors.csv").read_text(encoding="utf-8").splitlines()
    assert errors[1].startswith("3,Total,")


def test_sambung_import_turns_hostile_cells_into_row_errors_and_imports_the_other_files(
    tmp_path: Path,
) -> None:
    (tmp_path / "senin.csv").write_bytes(pawoon_export(10))
    (tmp_path / "selasa.csv").write_bytes(pawoon_hostile_export(10, start=100))
    (tmp_path / "rabu.csv").write_bytes(pawoon_export(10, start=200))
    result = sambung_import(tmp_path, "senin.csv", "selasa.csv", "rabu.csv")

    assert result.returncode == 1, result.stderr  # some rows failed
    assert "Traceback" not in result.stderr
    rows = {line.split()[0]: line.split()[1:4] for line in result.stdout.splitlines()[1:]}
    hostile = len(HOSTILE_ROWS)
    assert rows == {
        "senin.csv": ["10", "10", "0"],
        "selasa.csv": [str(10 + hostile), "10", str(hostile)],
        "rabu.csv": ["10", "10", "0"],  # the file after the hostile one: imported all the same
    }
    csv.field_size_limit(1 << 24)  # the errors file keeps the 200 KB cell as it was
    with (tmp_path / "selasa.csv.errors.csv").open(encoding="utf-8", newline="") as handle:
        errors = list(csv.reader(handle))[1:]
    assert len(errors) == hostile
    cells = [cell for row in errors for cell in row]
    assert '\'=HYPERLINK("http://example.invalid")' in cells
    assert not [cell for cell in cells if cell.startswith(("=", "+", "-", "@"))]


async def test_a_file_over_the_size_cap_fails_unread(store: Store, tmp_path: Path) -> None:
    time, inbox = FakeTime(), tmp_path / "inbox"
    runner = watcher(store, inbox, time, max_file_bytes=500)
    (inbox / "huge.csv").write_bytes(pawoon_export(50))
    await runner.scan_once()
    time.now += 3
    [report] = await runner.scan_once()
    assert report.file_error is not None and "max_file_bytes" in report.file_error
    assert (inbox / "failed" / "huge.csv").exists()
    assert "max_file_bytes" in (inbox / "failed" / "huge.csv.errors.csv").read_text()
    assert await stored_ids(store) == []


async def test_windows_1252_after_a_long_ascii_start_is_read_whole(
    store: Store, tmp_path: Path
) -> None:
    time, inbox = FakeTime(), tmp_path / "inbox"
    runner = watcher(store, inbox, time)
    ascii_part = pawoon_export(1500)  # well past the 64 KiB probe
    tail = "2026-11-26 21:00:00;PWN-CAFÉ;Rp 27.500;Rp 2.500;Café crème x1\n".encode("cp1252")
    (inbox / "kasir-lama.csv").write_bytes(ascii_part + tail)
    await runner.scan_once()
    time.now += 3
    [report] = await runner.scan_once()
    assert (report.imported, report.rejected, report.file_error) == (1501, 0, None)
    assert "PWN-CAFÉ" in await stored_ids(store)
    assert len(await store.list_outbox(limit=10_000)) == 1501


async def test_a_rejected_row_replays_into_a_record_once_the_connection_is_fixed(
    store: Store, tmp_path: Path
) -> None:
    from sambung.config import load_config
    from sambung.delivery.dlq import DeadLetters
    from sambung.intake.connections import file_drop_connector
    from sambung.plugins import load_plugins

    def loaded(number_style: str) -> Any:
        path = tmp_path / "sambung.yaml"
        path.write_text(
            "outlets:\n"
            "  - id: kemang\n"
            "    name: Kemang\n"
            "    connectors:\n"
            f"      pawoon: {{mode: file-drop, number_style: {number_style}}}\n",
            encoding="utf-8",
        )
        return load_config(path, load_plugins())

    # "27.500" alone cannot say whether the dot groups thousands: under `auto` the row is refused.
    export = tmp_path / "ambiguous.csv"
    export.write_bytes(
        b"Date;Transaction ID;Total;Tax;Items\n2026-11-26 10:00:00;TRX-AMB-1;27.500;2.500;Kopi x1\n"
    )
    before = loaded("auto")
    [connection] = before.connections
    importer = FileImporter(store, lambda outlet, kind: (), SystemClock())
    report = await importer.import_path(
        file_drop_connector(connection, SystemClock(), bound_to="test"), export
    )
    assert (report.imported, report.rejected) == (0, 1)
    [letter] = await store.find_dead_letters(DeadLetterQuery(stage="row"))

    [still] = await DeadLetters(store, before, clock=SystemClock()).replay([letter.id])
    assert still.result == "still_failing"

    # The merchant says which style the till uses; the kept row now maps, exactly.
    [replayed] = await DeadLetters(store, loaded("id"), clock=SystemClock()).replay([letter.id])
    assert replayed.result == "replayed", replayed
    record = await store.get_record("kemang", "pawoon", "transaction", "TRX-AMB-1")
    assert record is not None and '"total":"27500"' in record.payload
    [again] = await DeadLetters(store, loaded("id"), clock=SystemClock()).replay([letter.id])
    assert again.result == "not_open"


def test_the_errors_file_neutralises_formula_cells(tmp_path: Path) -> None:
    errors = ErrorsFile(tmp_path / "x.csv.errors.csv", ["id", "total"])
    cells = ('=HYPERLINK("http://evil")', "+1", "-2+3", "@SUM(A1)", "\tx", "\rx", "ok")
    errors.write(RowError(2, "total", "not an amount", cells))
    written = errors.finish()
    assert written is not None
    with written.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[1][3:] == ["'" + c for c in cells[:-1]] + ["ok"]
