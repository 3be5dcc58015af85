"""CSV import: one path for the inbox runner, the upload endpoint and `sambung import`.

A file is hashed first (a content already imported is not read again), then streamed: rows are
mapped in batches of thousands (in a worker thread, or for a large file in a worker process
that runs a batch ahead), each batch one atomic `ingest` (records
upserted, so a re-import after a crash adds nothing). Every rejected row is kept as a raw event
plus a dead letter (stage `row`, deduplicated by file hash and row number) and written to the
errors file. Only once every batch is committed is the file recorded as imported; the caller
moves it afterwards.
"""

from __future__ import annotations

import asyncio
import csv
import ctypes
import hashlib
import io
import multiprocessing
import os
import pickle
import signal
import stat
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice, repeat
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import structlog

try:
    import fcntl
except ImportError:  # Windows: no fcntl, and no fork either
    fcntl = None  # type: ignore[assignment]

from . import metrics
from .clock import Clock
from .connectors import FileDropConnector, FileDropSettings
from .csvfiles import (
    CsvStream,
    EncodingError,
    FileError,
    NumberStyle,
    RowError,
    open_csv,
    spreadsheet_safe,
)
from .generic_csv import amount_headers, parse_generic
from .models import Record, SerializedRecord
from .store import DeadLetterIn, ImportedFile, IngestRequest, RawEvent, Store
from .store.base import printable

log = structlog.get_logger("sambung.filedrop")

BATCH_ROWS = 5000
# From this size on a file is mapped in a worker process: forking costs a few milliseconds.
WORKER_FROM_BYTES = 1 << 20
_CAN_FORK = "fork" in multiprocessing.get_all_start_methods()
# Row errors kept in memory for an answer or a summary; the errors file has all of them.
KEEP_ERRORS = 1000
Routes = Callable[[str, str], Sequence[str]]
Progress = Callable[[int], None]


@dataclass
class ImportReport:
    """What importing one file did."""

    name: str
    sha256: str = ""
    size: int = 0
    rows: int = 0
    imported: int = 0
    rejected: int = 0
    errors: list[RowError] = field(default_factory=list)
    duplicate: bool = False
    file_error: str | None = None
    errors_path: Path | None = None
    header: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the whole file went in: no file error and no rejected row."""
        return self.file_error is None and self.rejected == 0


def hash_file(path: Path, limit: int) -> tuple[str, int]:
    """SHA-256 and size of a file, read in chunks; `FileError` over `limit` bytes."""
    digest, size = hashlib.sha256(), 0
    with open_regular(path) as handle:
        while chunk := handle.read(1 << 20):
            size += len(chunk)
            if size > limit:
                raise FileError(f"the file is larger than max_file_bytes ({limit} bytes)")
            digest.update(chunk)
    return digest.hexdigest(), size


def open_regular(path: Path) -> BinaryIO:
    """Open a regular file for reading, never through a symlink (`FileError` otherwise)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as err:
        raise FileError(f"cannot open {path.name}: {err.strerror or err}") from err
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise FileError(f"{path.name} is not a regular file")
    return os.fdopen(fd, "rb")


def records_of(
    connector: FileDropConnector[FileDropSettings], stream: CsvStream
) -> Iterator[Record | RowError]:
    """The connector's rows: its own export, or core's generic format when configured."""
    settings = connector.settings
    if settings.format == "generic":
        return parse_generic(stream, connector.outlet, connector.name, settings.columns)
    return iter(connector.parse_file(stream))


def open_for(
    connector: FileDropConnector[FileDropSettings],
    handle: Any,
    encoding: str | None = None,
    *,
    recorded_style: str | None = None,
) -> CsvStream:
    """Open a binary handle as CSV with the connection's number style and amount columns.

    `recorded_style` is the style an earlier import decided for the file a row came from; the
    connection's own setting wins when it names one.
    """
    settings = connector.settings
    generic = settings.format == "generic"
    columns = amount_headers(settings.columns) if generic else connector.amount_columns
    style = NumberStyle(settings.number_style)
    if style is NumberStyle.AUTO and recorded_style:
        style = NumberStyle(recorded_style)
    return open_csv(
        handle,
        connector.outlet.timezone,
        style=style,
        amount_columns=columns,
        encoding=encoding,
    )


def remap_row(
    connector: FileDropConnector[FileDropSettings], kept: bytes, recorded_style: str | None
) -> list[Record | RowError]:
    """Map a dead-lettered row again, as kept (its file's header and its values, UTF-8), with
    the connector as it is configured now: the replay path after a fix."""
    stream = open_for(connector, io.BytesIO(kept), "utf-8", recorded_style=recorded_style)
    return list(records_of(connector, stream))


class ErrorsFile:
    """`<name>.errors.csv`: every rejected row with its number, column, reason and values."""

    def __init__(self, final: Path | None, header: Sequence[str]) -> None:
        self.final = final
        self.header = list(header)
        self._temp = final.with_name(f".{final.name}.part") if final else None
        self._handle: io.TextIOWrapper | None = None
        self._writer: Any = None

    def write(self, error: RowError) -> None:
        """Append one rejected row."""
        if self._temp is None:
            return
        if self._handle is None:
            self._temp.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self._temp.open("w", encoding="utf-8", newline="")
            self._writer = csv.writer(self._handle)
            self._writer.writerow(
                spreadsheet_safe(c) for c in ["row", "column", "reason", *self.header]
            )
        cells = [error.row, error.column or "", error.reason, *error.values]
        self._writer.writerow(spreadsheet_safe(cell) for cell in cells)

    def finish(self) -> Path | None:
        """Move the finished file into place; None when there was nothing to report."""
        if self._handle is None or self._temp is None or self.final is None:
            return None
        self._handle.close()
        os.replace(self._temp, self.final)
        return self.final

    def discard(self) -> None:
        """Drop a half-written errors file (the import will run again)."""
        if self._handle is not None and self._temp is not None:
            self._handle.close()
            self._temp.unlink(missing_ok=True)


@dataclass(frozen=True)
class FileShape:
    """What the importer needs of an opened CSV beside its rows: header, delimiter, style."""

    header: list[str]
    delimiter: str
    style: NumberStyle | None
    encoding: str = "utf-8"


Prefix = tuple[str, str, str]  # a key without its external id: (outlet, source_system, kind)


@dataclass
class _Batch:
    """A batch of mapped rows as the worker sends it: columns, row errors, rows read."""

    # Mapped rows as columns of plain values, which pickle writes in C: a list of per-row
    # (key, JSON, version, date) tuples cost the worker 2 us a row to pickle, most of it the
    # dates (pickled through __reduce__) and a memo entry for every tuple. A key's prefix is one
    # shared tuple per kind, written once and referred to after. Rows are fingerprinted here
    # too: storing a row costs the importing process more than mapping it costs the worker.
    prefixes: list[Prefix] = field(default_factory=list)
    external_ids: list[str] = field(default_factory=list)
    payloads: list[str] = field(default_factory=list)
    fingerprints: list[str] = field(default_factory=list)
    versions: list[datetime | None] = field(default_factory=list)
    days: list[str | None] = field(default_factory=list)  # ISO dates
    errors: list[RowError] = field(default_factory=list)
    rows: int = 0
    records: list[SerializedRecord] = field(default_factory=list)

    def add(self, record: Record, prefixes: dict[Prefix, Prefix]) -> None:
        """Serialise one mapped record into the columns."""
        # The JSON as text: orjson's bytes are allocated roomy, and 5,000 of them held at once
        # took ~40 MB more than their text does.
        (outlet, source, kind, external_id), payload, fingerprint, version, day = (
            record.serialized()
        )
        prefix = (outlet, source, kind)
        self.prefixes.append(prefixes.setdefault(prefix, prefix))
        self.external_ids.append(external_id)
        self.payloads.append(payload)
        self.fingerprints.append(fingerprint)
        self.versions.append(version)
        self.days.append(day)

    def finish(self) -> _Batch:
        """Turn the columns into the store's `SerializedRecord`s."""
        # Built in C, zip making the tuples and tuple.__new__ the records: a comprehension
        # calling the class (whose __new__ is Python) cost a microsecond a row, in the process
        # that is the slower of the two.
        outlets, sources, kinds = zip(*self.prefixes, strict=True) if self.prefixes else ((),) * 3
        keys = zip(outlets, sources, kinds, self.external_ids, strict=True)
        columns = zip(keys, self.payloads, self.fingerprints, self.versions, self.days, strict=True)
        self.records = list(map(tuple.__new__, repeat(SerializedRecord), columns))
        self.prefixes, self.external_ids, self.payloads = [], [], []
        self.fingerprints, self.versions, self.days = [], [], []
        return self


def _finished(item: FileShape | _Batch | _Unmapped | None) -> FileShape | _Batch | None:
    assert not isinstance(item, _Unmapped), "handed off with no one to map it"
    return item.finish() if isinstance(item, _Batch) else item


def _take(rows: Iterator[Record | RowError], size: int) -> _Batch:
    """The next `size` rows, mapped and serialised (CPU work: never on the event loop)."""
    batch = _Batch()
    add, bad = batch.add, batch.errors
    prefixes: dict[Prefix, Prefix] = {}
    count = 0
    for item in rows:
        if isinstance(item, RowError):
            bad.append(item)
        else:
            add(item, prefixes)
        count += 1
        if count >= size:
            break
    batch.rows = count
    return batch


@dataclass
class _Unmapped:
    """A batch the worker hands over as read, `(row number, cells)`, for the importer to map."""

    rows: list[tuple[int, list[str]]]


def mapped_batches(
    connector: FileDropConnector[FileDropSettings],
    handle: BinaryIO,
    encoding: str | None,
    size: int,
    *,
    hand_off: Callable[[], bool] | None = None,
) -> Iterator[FileShape | _Batch | _Unmapped]:
    """The file's shape, then its rows in batches of `size`, mapped and serialised; a batch
    is left unmapped whenever `hand_off()` says so."""
    stream = open_for(connector, handle, encoding)
    yield FileShape(stream.header, stream.delimiter, stream.style, stream.encoding)
    records = records_of(connector, stream)
    while True:
        if hand_off is not None and hand_off():
            # The mapper above is paused between rows: both read the same rows, in turn.
            if not (rows := list(islice(stream.rows(), size))):
                return
            yield _Unmapped(rows)
        elif (batch := _take(records, size)).rows:
            yield batch
        else:
            return


def map_here(
    connector: FileDropConnector[FileDropSettings], shape: FileShape, unmapped: _Unmapped
) -> _Batch:
    """Map a batch the worker handed over, exactly as the worker maps its own."""
    stream = CsvStream(
        header=shape.header,
        delimiter=shape.delimiter,
        encoding=shape.encoding,
        style=shape.style,
        tz=connector.outlet.timezone,
        _rows=iter(unmapped.rows),
    )
    return _take(records_of(connector, stream), len(unmapped.rows)).finish()


class _Mapped(Protocol):
    """Where an import's batches come from: this process, or a worker process."""

    async def next(self) -> FileShape | _Batch | None:
        """The next item of `mapped_batches`, or None after the last."""

    async def close(self) -> None:
        """Release the file (and the worker)."""

    def idle(self, seconds: float) -> None:
        """Note that the importer sat idle this long, its last batch stored, for this one."""


class _MappedInThread:
    """Maps in a worker thread, one batch at a time: for small files, where a process costs
    more to start than it saves."""

    def __init__(
        self,
        connector: FileDropConnector[FileDropSettings],
        path: Path,
        encoding: str | None,
        size: int,
    ) -> None:
        self._handle = open_regular(path)
        self._items = mapped_batches(connector, self._handle, encoding, size)

    async def next(self) -> FileShape | _Batch | None:
        """The next shape or batch, mapped in a thread."""
        return await asyncio.to_thread(lambda: _finished(next(self._items, None)))

    async def close(self) -> None:
        """Close the file."""
        self._handle.close()

    def idle(self, seconds: float) -> None:
        """Nothing to balance: the thread maps only when asked."""


@dataclass(frozen=True)
class _Failed:
    """An exception raised while mapping in the worker process, sent to be raised here."""

    error: BaseException


class _MappedInProcess:
    """Maps in a forked worker process while this one writes: the two use both cores.

    Mapping and serialising a row costs about as much CPU as storing it, and both need the GIL,
    so threads could only take turns. The worker reads, maps, serialises and fingerprints; it
    sends each batch through a pipe (columns of plain values and row errors, in file order, see
    `_Batch`) and maps the next one meanwhile; this process commits (and maps the odd batch the
    worker hands over when this one sits idle, see `_HandOff`). A send waits until this process
    takes the batch, so the worker runs at most a batch ahead and memory stays flat. Nothing is
    committed by the worker: if either process dies, the file stays in the inbox and the next
    import upserts the same rows.
    """

    def __init__(
        self,
        connector: FileDropConnector[FileDropSettings],
        path: Path,
        encoding: str | None,
        size: int,
    ) -> None:
        # fork: the worker inherits the connector (its plugin, settings and parser) as it is.
        context = multiprocessing.get_context("fork")
        self._receive, send = context.Pipe(duplex=False)
        _widen(send)
        self._importer_idle = context.Event()
        self._process = context.Process(
            target=_map_in_worker,
            args=(
                send,
                self._receive,
                _HandOff(self._importer_idle),
                connector,
                path,
                encoding,
                size,
                os.getpid(),
            ),
            name="sambung-csv-mapper",
            daemon=True,
        )
        self._process.start()
        send.close()
        self._connector = connector
        self._shape: FileShape | None = None
        self._receiving: asyncio.Future[FileShape | _Batch | _Failed | None] | None = None

    async def next(self) -> FileShape | _Batch | None:
        """The next shape or batch the worker mapped."""
        self._receiving = asyncio.ensure_future(asyncio.to_thread(self._receive_one))
        item = await asyncio.shield(self._receiving)
        if isinstance(item, _Failed):
            raise item.error
        return item

    def _receive_one(self) -> FileShape | _Batch | _Failed | None:
        try:
            item: FileShape | _Batch | _Unmapped | _Failed | None = self._receive.recv()
        except EOFError:
            self._process.join()
            raise RuntimeError(
                f"the CSV mapping process ended unexpectedly (exit code {self._process.exitcode})"
            ) from None
        if isinstance(item, FileShape):
            self._shape = item
        if isinstance(item, _Unmapped):
            assert self._shape is not None  # the shape always comes first
            return map_here(self._connector, self._shape, item)
        return item if isinstance(item, _Failed) else _finished(item)

    def idle(self, seconds: float) -> None:
        """Ask the worker for an unmapped batch when this process waited long for this one."""
        if seconds >= IDLE_SECONDS:
            self._importer_idle.set()

    async def close(self) -> None:
        """Stop the worker if it is still running and reap it."""
        if self._process.is_alive():
            self._process.kill()
        await asyncio.to_thread(self._process.join)
        # A receive still running (the import was cancelled) ends at the pipe's EOF now; only
        # then is the pipe closed, so its descriptor cannot be reused under that read.
        if self._receiving is not None:
            await asyncio.gather(self._receiving, return_exceptions=True)
        self._receive.close()


# The pipe's buffer: Linux's default 64 KiB took a batch (~2.5 MB) in forty writes and as many
# wake-ups of the reader; 1 MiB, the most an unprivileged process may ask for by default
# (/proc/sys/fs/pipe-max-size), made imports 1.17x as fast (ABBA-paired, 1M rows).
PIPE_BYTES = 1 << 20


def _widen(pipe: Connection) -> None:
    """Give the pipe `PIPE_BYTES` of buffer where the system allows (Linux); else keep it."""
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None) if fcntl is not None else None
    if set_size is None:
        return
    try:
        fcntl.fcntl(pipe.fileno(), set_size, PIPE_BYTES)
    except OSError as err:  # a lower pipe-max-size: the default buffer still works
        log.debug("csv.pipe_not_widened", error=str(err))


def _die_with(parent: int) -> None:
    """Have the kernel SIGKILL this worker when the importing process dies, even by SIGKILL.

    The worker holds copies of the importer's descriptors, a daemon's listening sockets among
    them: left running, it would keep a restarted daemon from binding its port. Linux only
    (prctl); elsewhere the worker still ends at its next send, on the closed pipe.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the importer died before the request took effect
        os._exit(1)


_PR_SET_PDEATHSIG = 1


def _map_in_worker(
    send: Connection,
    receive: Connection,
    hand_off: _HandOff,
    connector: FileDropConnector[FileDropSettings],
    path: Path,
    encoding: str | None,
    size: int,
    parent: int,
) -> None:
    """The worker process: map the file and send every item, then None (or the failure)."""
    # The fork copied the importer's reading end too: with it open here, the pipe would keep a
    # reader after the importer died, and a send would wait forever instead of failing.
    receive.close()
    _die_with(parent)
    # Signals are the importing process's business: it stops the worker when it stops. The
    # inherited wakeup fd would otherwise tell the parent's event loop about our signals.
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    except ValueError:  # not the main thread: nothing was inherited to undo
        pass
    try:
        with open_regular(path) as handle:
            for item in mapped_batches(connector, handle, encoding, size, hand_off=hand_off.now):
                send.send(item)
                hand_off.sent(item)
        send.send(None)
    except (BrokenPipeError, ConnectionResetError):
        return  # the importer is gone; it commits nothing more, so neither do we
    except BaseException as err:  # raised again in the importer, as it would be in-process
        try:
            pickle.dumps(err)
        except Exception:
            err = RuntimeError(f"{type(err).__name__}: {err}")
        try:
            send.send(_Failed(err))
        except OSError:
            return
    finally:
        send.close()


# The importer asks for a batch to map when it waited this long for the last one, its commit
# done: it had nothing else to do.
IDLE_SECONDS = 0.02
# At most one batch in this many is handed to the importer to map.
HAND_OFF_EVERY = 6


class _HandOff:
    """Balances the two processes: the worker leaves the next batch unmapped for the importer
    when the importer says it sat idle, waiting for a mapped batch after its last commit.

    Which process is the slower depends on the connector and the store: a file whose rows are
    costly to map keeps the importer waiting, a slow disk or a PostgreSQL round trip keeps the
    worker waiting. Only the importer knows when it is idle (a fast send only shows that its
    receiving thread was ready, not that it had nothing to commit), so it says so through an
    event. Handing off at most one batch in `HAND_OFF_EVERY` keeps the importer, which also
    commits, from becoming the slower one.
    """

    def __init__(self, importer_idle: EventType) -> None:
        self._importer_idle = importer_idle
        self._mapped = 0  # batches mapped here since the last one handed off

    def now(self) -> bool:
        """Whether to leave the next batch unmapped."""
        return self._mapped >= HAND_OFF_EVERY - 1 and self._importer_idle.is_set()

    def sent(self, item: object) -> None:
        """Note what was sent."""
        if isinstance(item, _Unmapped):
            self._mapped = 0
            self._importer_idle.clear()
        elif isinstance(item, _Batch):
            self._mapped += 1


class FileImporter:
    """Imports CSV files for file-drop connections into the store."""

    def __init__(
        self,
        store: Store,
        routes: Routes,
        clock: Clock,
        *,
        batch_rows: int = BATCH_ROWS,
        worker_from_bytes: int = WORKER_FROM_BYTES,
    ) -> None:
        self._store = store
        self._routes = routes
        self._clock = clock
        self._batch_rows = batch_rows
        # Files this large are mapped in a worker process (see `_MappedInProcess`).
        self._worker_from_bytes = worker_from_bytes

    async def import_path(
        self,
        connector: FileDropConnector[FileDropSettings],
        path: Path,
        *,
        name: str | None = None,
        channel: str = "file",
        errors_path: Path | None = None,
        progress: Progress | None = None,
    ) -> ImportReport:
        """Import one file; the errors file goes to `errors_path` when a row is rejected."""
        # A name from a disk or a client may hold bytes no text column keeps (a Latin-1 name
        # on a UTF-8 file system is a lone surrogate here): kept spelled as escapes.
        name = printable(name or path.name)
        report = ImportReport(name=name)
        bound = connector.log.bind(file=name)
        limit = connector.settings.max_file_bytes
        try:
            report.sha256, report.size = await asyncio.to_thread(hash_file, path, limit)
        except FileError as err:
            report.file_error = str(err)
            bound.warning("file.rejected", error=report.file_error)
            return report
        known = await self._store.get_imported_file(
            connector.outlet.id, connector.name, report.sha256
        )
        if known is not None:
            report.duplicate = True
            report.imported, report.rejected = known.rows_imported, known.rows_rejected
            bound.info("file.already_imported", sha256=report.sha256, first_name=known.name)
            return report

        reject_file = connector.settings.on_row_error == "reject_file"

        async def attempt(encoding: str | None) -> tuple[ImportReport, bool]:
            """(report, whether rows were committed) for one reading of the file."""
            if reject_file:
                # A first pass commits nothing: any bad row and the file is refused whole.
                checked = await self._run(
                    connector, path, report, errors_path, dry_run=True, encoding=encoding
                )
                if checked.rejected:
                    checked.imported = 0
                    bound.warning("file.rejected", rejected_rows=checked.rejected)
                    return checked, False
            done = await self._run(
                connector,
                path,
                report,
                None if reject_file else errors_path,
                progress=progress,
                encoding=encoding,
            )
            return done, True

        try:
            try:
                report, committed = await attempt(None)
            except EncodingError as err:
                # The start looked like UTF-8 but a later row is not: read it all as
                # Windows-1252. Rows already committed were ASCII, identical in both, so
                # reading again only upserts them unchanged.
                bound.info("file.reread_as_cp1252", reason=str(err))
                report, committed = await attempt("cp1252")
        except FileError as err:
            report.file_error = str(err)
            bound.warning("file.rejected", error=report.file_error)
            return report
        if not committed:
            return report
        await self._store.record_imported_file(
            ImportedFile(
                outlet=connector.outlet.id,
                connector=connector.name,
                sha256=report.sha256,
                name=name,
                size=report.size,
                rows_imported=report.imported,
                rows_rejected=report.rejected,
                channel=channel,
                imported_at=self._clock.now(),
            )
        )
        bound.info(
            "file.imported",
            rows=report.rows,
            imported=report.imported,
            rejected=report.rejected,
            sha256=report.sha256,
        )
        return report

    async def _run(
        self,
        connector: FileDropConnector[FileDropSettings],
        path: Path,
        report: ImportReport,
        errors_path: Path | None,
        *,
        dry_run: bool = False,
        progress: Progress | None = None,
        encoding: str | None = None,
    ) -> ImportReport:
        report = ImportReport(name=report.name, sha256=report.sha256, size=report.size)
        in_worker = report.size >= self._worker_from_bytes and _CAN_FORK
        mapped: _Mapped = (_MappedInProcess if in_worker else _MappedInThread)(
            connector, path, encoding, self._batch_rows
        )
        try:
            shape = await mapped.next()
            assert isinstance(shape, FileShape)
            report.header = shape.header
            errors = ErrorsFile(errors_path, shape.header)
            # A batch is committed while the next is received and fingerprinted (the commit
            # spends most of its time in SQLite or on the network, without the GIL), but never
            # two at once: a store with several writers could otherwise land them out of file
            # order, and the later of two rows for one record must win.
            committing: tuple[asyncio.Future[None], _Batch] | None = None
            clock = asyncio.get_running_loop().time
            committed_at = 0.0

            def note_committed(_: object) -> None:
                nonlocal committed_at
                committed_at = clock()

            try:
                while (batch := await mapped.next()) is not None:
                    assert isinstance(batch, _Batch)
                    if committing is not None:  # did it sit idle, its last batch stored?
                        mapped.idle(clock() - committed_at if committing[0].done() else 0.0)
                    for error in batch.errors:
                        errors.write(error)
                    report.rejected += len(batch.errors)
                    room = KEEP_ERRORS - len(report.errors)
                    report.errors.extend(batch.errors[: max(room, 0)])
                    if committing is not None:
                        await self._committed(report, *committing, progress)
                    commit = self._commit(connector, report.sha256, batch, shape, dry_run=dry_run)
                    committing = asyncio.ensure_future(commit), batch
                    committing[0].add_done_callback(note_committed)
                if committing is not None:
                    await self._committed(report, *committing, progress)
            except BaseException:
                errors.discard()
                if committing is not None and not committing[0].done():
                    # Its rows may still land: a re-import upserts them unchanged.
                    committing[0].cancel()
                    await asyncio.gather(committing[0], return_exceptions=True)
                raise
            report.errors_path = errors.finish()
        finally:
            await mapped.close()
        return report

    @staticmethod
    async def _committed(
        report: ImportReport,
        commit: asyncio.Future[None],
        batch: _Batch,
        progress: Progress | None,
    ) -> None:
        """Wait for a batch's commit, then count it."""
        await commit
        report.rows += batch.rows
        report.imported += len(batch.records)
        if progress is not None:
            progress(report.rows)

    async def _commit(
        self,
        connector: FileDropConnector[FileDropSettings],
        sha256: str,
        batch: _Batch,
        shape: FileShape,
        *,
        dry_run: bool = False,
    ) -> None:
        """Store a batch (nothing on a dry run)."""
        if dry_run:
            return
        outlet, source = connector.outlet.id, connector.name
        routes_for = self._routes
        requests = []
        if batch.records:
            # Routes depend on the kind alone: asked once per kind, not once per row.
            by_kind = {kind: routes_for(outlet, kind) for kind in {r.kind for r in batch.records}}
            routes = [by_kind[record.kind] for record in batch.records]
            requests.append(IngestRequest(records=batch.records, routes=routes))
        now = self._clock.now()
        for error in batch.errors:
            # The row is kept under its file's header and with the file's number style, so a
            # replay after a fix can read it as the import did.
            line = io.StringIO()
            writer = csv.writer(line, delimiter=shape.delimiter)
            writer.writerow(shape.header)
            writer.writerow(error.values)
            style = shape.style.value if shape.style is not None else NumberStyle.AUTO.value
            raw = RawEvent(
                outlet=outlet,
                source_system=source,
                channel="file",
                # File and row: a re-import of the same file finds the same dead letter.
                dedup_key=f"{sha256}:{error.row}",
                body=line.getvalue().encode(),
                received_at=now,
                event_type="csv.row",
                content_type=f"text/csv; number-style={style}",
            )
            entry = DeadLetterIn(
                stage="row",
                outlet=outlet,
                connector=source,
                error_type="RowError",
                error=f"row {error.row}: {error.reason}",
                field=error.column,
            )
            requests.append(IngestRequest(raw=raw, dead_letter=entry))
        results = await asyncio.gather(*(self._store.ingest(r) for r in requests))
        if batch.records:
            outcomes = Counter(r.outcome for r in results[0].records)
            for outcome, count in outcomes.items():
                metrics.child(metrics.RECORDS_INGESTED, source, "file", outcome.value).inc(count)
        new_dead = sum(1 for r in results if r.dead_letter_id is not None)
        if new_dead:
            metrics.child(metrics.DEAD_LETTERS, "row", source).inc(new_dead)
