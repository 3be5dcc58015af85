"""Large files are mapped in a worker process: the store, the report and the errors file must be
exactly what mapping in process gives."""

from __future__ import annotations

import fcntl
import multiprocessing
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sambung.clock import SystemClock
from sambung.intake import csvworker
from sambung.intake.csvimport import FileImporter, ImportReport
from sambung.store.sqlite import SqliteStore
from sambung.testing import make_connector
from sambung_pawoon.connector import PawoonConnector

from .csvdata import HEADER, pawoon_export

IN_PROCESS = 1 << 40  # no file is this large: always mapped in a thread
ALWAYS = 0  # every file goes to a worker process


def pawoon_importer(
    store: SqliteStore, worker_from_bytes: int, *, batch_rows: int, **settings: Any
) -> tuple[PawoonConnector, FileImporter]:
    """A file-drop Pawoon connection and an importer routing every record to `books`."""
    connector = make_connector(
        PawoonConnector, {"mode": ["file-drop"], "webhook_secret": "s" * 16, **settings}
    )
    importer = FileImporter(
        store,
        lambda outlet, kind: ("books",),
        SystemClock(),
        batch_rows=batch_rows,
        worker_from_bytes=worker_from_bytes,
    )
    return connector, importer


async def import_with(
    tmp_path: Path, name: str, data: bytes, worker_from_bytes: int, **settings: Any
) -> tuple[ImportReport, Path]:
    folder = tmp_path / name
    folder.mkdir()
    source = folder / "export.csv"
    source.write_bytes(data)
    store = SqliteStore(folder / "s.db", synchronous="OFF")
    await store.open()
    try:
        connector, importer = pawoon_importer(store, worker_from_bytes, batch_rows=50, **settings)
        errors = folder / "export.csv.errors.csv"
        report = await importer.import_path(connector, source, errors_path=errors)
    finally:
        await store.close()
    return report, folder


def stored(folder: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(folder / "s.db") as conn:
        return {
            "records": list(
                conn.execute(
                    "SELECT id, outlet, source_system, kind, external_id, fingerprint, revision,"
                    " source_updated_at, payload, business_date FROM records ORDER BY id"
                )
            ),
            "outbox": list(
                conn.execute(
                    "SELECT sink, record_id, revision, idempotency_key, payload FROM outbox"
                )
            ),
            "raw": list(conn.execute("SELECT dedup_key, content_type, body FROM raw_events")),
            "dead": list(conn.execute("SELECT stage, error, field FROM dead_letters ORDER BY id")),
        }


def summary(report: ImportReport) -> tuple[Any, ...]:
    return (
        report.rows,
        report.imported,
        report.rejected,
        report.errors,
        report.file_error,
        report.header,
    )


@pytest.mark.parametrize(
    "idle_seconds",
    [float("inf"), float("-inf")],
    ids=["the worker maps every batch", "every other batch is mapped by the importer"],
)
async def test_a_worker_process_stores_exactly_what_mapping_in_process_stores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, idle_seconds: float
) -> None:
    monkeypatch.setattr(csvworker, "IDLE_SECONDS", idle_seconds)
    monkeypatch.setattr(csvworker, "HAND_OFF_EVERY", 2)
    # The smallest pipe holds the worker back after every batch, so it is still mapping when
    # the importer asks; with the daemon's 1 MiB the worker could finish all 25 batches first
    # on a busy machine, and whether any was handed off became a race.
    monkeypatch.setattr(csvworker, "PIPE_BYTES", 4096)
    mapped_by_importer = []

    def map_here(*args: Any) -> Any:
        mapped_by_importer.append(args)
        return original_map_here(*args)

    original_map_here = csvworker.map_here
    monkeypatch.setattr(csvworker, "map_here", map_here)
    data = pawoon_export(1234, bad={3, 49, 50, 51, 1000})
    here, here_folder = await import_with(tmp_path, "thread", data, IN_PROCESS)
    there, there_folder = await import_with(tmp_path, "process", data, ALWAYS)
    # The importer asks after every batch from the second on; the worker, held back by the
    # pipe (25 batches of ~20 kB against its 4 kB), hears of it while batches remain.
    if idle_seconds > 0:
        assert mapped_by_importer == []
    else:
        assert len(mapped_by_importer) >= 1
    assert (there.imported, there.rejected) == (1229, 5)
    assert summary(there) == summary(here)
    assert stored(there_folder) == stored(here_folder)
    # Daily summaries find imported sales by their business date, whichever process mapped them.
    assert all(row[-1] is not None for row in stored(there_folder)["records"])
    errors = (there_folder / "export.csv.errors.csv").read_bytes()
    assert errors == (here_folder / "export.csv.errors.csv").read_bytes()
    assert errors.count(b"\n") == 6


async def test_bytes_that_are_not_utf8_late_in_the_file_reread_through_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csvworker, "IDLE_SECONDS", float("-inf"))  # hand-offs included
    monkeypatch.setattr(csvworker, "HAND_OFF_EVERY", 2)
    tail = "2026-11-26 21:00:00;PWN-CAFÉ;Rp 27.500;Rp 2.500;Café crème x1\n".encode("cp1252")
    data = pawoon_export(1500) + tail
    here, here_folder = await import_with(tmp_path, "thread", data, IN_PROCESS)
    there, there_folder = await import_with(tmp_path, "process", data, ALWAYS)
    assert (there.imported, there.rejected, there.file_error) == (1501, 0, None)
    assert summary(there) == summary(here)
    assert stored(there_folder) == stored(here_folder)


@pytest.mark.parametrize("worker_from_bytes", [IN_PROCESS, ALWAYS])
async def test_reject_file_and_file_errors_behave_the_same_in_a_worker(
    tmp_path: Path, worker_from_bytes: int
) -> None:
    report, folder = await import_with(
        tmp_path,
        "reject",
        pawoon_export(300, bad={250}),
        worker_from_bytes,
        on_row_error="reject_file",
    )
    assert (report.imported, report.rejected) == (0, 1)
    assert stored(folder)["records"] == []
    headless = HEADER.replace("Total", "Jumlah").encode() + pawoon_export(10)[len(HEADER) :]
    report, folder = await import_with(tmp_path, "columns", headless, worker_from_bytes)
    assert report.file_error is not None and "'Total' is missing" in report.file_error
    assert stored(folder)["records"] == []


async def test_a_cancelled_import_stops_its_worker_and_a_new_import_completes_it(
    tmp_path: Path,
) -> None:
    import asyncio
    import multiprocessing

    source = tmp_path / "export.csv"
    source.write_bytes(pawoon_export(20_000))
    store = SqliteStore(tmp_path / "s.db", synchronous="OFF")
    await store.open()
    try:
        connector = make_connector(
            PawoonConnector, {"mode": ["file-drop"], "webhook_secret": "s" * 16}
        )
        importer = FileImporter(
            store, lambda outlet, kind: (), SystemClock(), batch_rows=50, worker_from_bytes=ALWAYS
        )
        committed = asyncio.Event()
        task = asyncio.create_task(
            importer.import_path(connector, source, progress=lambda rows: committed.set())
        )
        await committed.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert multiprocessing.active_children() == []
        partial = len(await store.list_records(limit=100_000))
        assert 0 < partial < 20_000 and partial % 50 == 0  # whole batches only
        report = await importer.import_path(connector, source)
        assert (report.imported, report.rejected) == (20_000, 0)
        assert len(await store.list_records(limit=100_000)) == 20_000
    finally:
        await store.close()


async def test_a_worker_whose_importer_is_gone_ends_at_its_next_send(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without the kernel's help (prctl is Linux only): the pipe alone must end the worker.
    monkeypatch.setattr(csvworker, "die_with", lambda parent: None)
    source = tmp_path / "export.csv"
    source.write_bytes(pawoon_export(5_000))
    connector = make_connector(PawoonConnector, {"mode": ["file-drop"], "webhook_secret": "s" * 16})
    mapped = csvworker.MappedInProcess(connector, source, None, 50)
    assert isinstance(await mapped.next(), csvworker.FileShape)
    mapped._receive.close()  # the importer's end goes away, as when it is killed
    mapped._process.join(timeout=30)
    assert mapped._process.exitcode == 0, "the worker still waits on a pipe nobody reads"


@pytest.mark.skipif(not hasattr(fcntl, "F_GETPIPE_SZ"), reason="pipe sizes are Linux's")
def test_the_worker_pipe_holds_a_mebibyte() -> None:
    receive, send = multiprocessing.Pipe(duplex=False)
    try:
        csvworker._widen(send)
        assert fcntl.fcntl(receive.fileno(), fcntl.F_GETPIPE_SZ) == csvworker.PIPE_BYTES
    finally:
        receive.close()
        send.close()


@pytest.mark.parametrize("worker_from_bytes", [IN_PROCESS, ALWAYS])
async def test_a_commit_that_fails_mid_file_stops_the_import_and_a_retry_adds_no_duplicate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, worker_from_bytes: int
) -> None:
    import multiprocessing

    from sambung.errors import StoreUnavailable

    source = tmp_path / "export.csv"
    source.write_bytes(pawoon_export(2_000, bad={7, 1_500}))
    store = SqliteStore(tmp_path / "s.db", synchronous="OFF")
    await store.open()
    healthy_ingest = store.ingest
    calls = 0

    async def ingest_failing_at_the_fifth_batch(request: Any) -> Any:
        nonlocal calls
        if request.records:
            calls += 1
            if calls == 5:
                raise StoreUnavailable("disk full")
        return await healthy_ingest(request)

    try:
        connector, importer = pawoon_importer(store, worker_from_bytes, batch_rows=100)
        monkeypatch.setattr(store, "ingest", ingest_failing_at_the_fifth_batch)
        with pytest.raises(StoreUnavailable, match="disk full"):
            await importer.import_path(connector, source, errors_path=tmp_path / "e.csv")
        assert multiprocessing.active_children() == []
        assert not (tmp_path / "e.csv").exists()  # no errors file for an import that failed
        # Four whole batches landed before the failure; none after it was even started.
        assert len(await store.list_records(limit=10_000)) == 4 * 100 - 1  # row 7 is bad
        assert await store.get_imported_file("kemang", "pawoon", report_hash(source)) is None

        monkeypatch.setattr(store, "ingest", healthy_ingest)
        report = await importer.import_path(connector, source, errors_path=tmp_path / "e.csv")
        assert (report.imported, report.rejected) == (1_998, 2)
        records = await store.list_records(limit=10_000)
        assert len(records) == 1_998 and all(r.revision == 1 for r in records)
        assert await store.get_imported_file("kemang", "pawoon", report_hash(source)) is not None
    finally:
        await store.close()
    assert len(stored(tmp_path)["outbox"]) == 1_998  # one delivery per record, not per attempt


def report_hash(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()
