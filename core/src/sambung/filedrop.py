"""CSV import: one path for the inbox runner, the upload endpoint and `sambung import`.

A file is hashed first (a content already imported is not read again), then streamed: rows are
mapped in a worker thread, in batches of thousands, each batch one atomic `ingest` (records
upserted, so a re-import after a crash adds nothing). Every rejected row is kept as a raw event
plus a dead letter (stage `row`, deduplicated by file hash and row number) and written to the
errors file. Only once every batch is committed is the file recorded as imported; the caller
moves it afterwards.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import os
import stat
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import structlog

from . import metrics
from .clock import Clock
from .connectors import FileDropConnector
from .csvfiles import CsvStream, EncodingError, FileError, NumberStyle, RowError, open_csv
from .generic_csv import amount_headers, parse_generic
from .models import Record
from .store import DeadLetterIn, ImportedFile, IngestRequest, RawEvent, Store

log = structlog.get_logger("sambung.filedrop")

BATCH_ROWS = 5000
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


def records_of(connector: FileDropConnector, stream: CsvStream) -> Iterator[Record | RowError]:
    """The connector's rows: its own export, or core's generic format when configured."""
    settings = connector.settings
    if getattr(settings, "format", "native") == "generic":
        return parse_generic(stream, connector.outlet, connector.name, settings.columns)
    return iter(connector.parse_file(stream))


def open_for(
    connector: FileDropConnector,
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
    generic = getattr(settings, "format", "native") == "generic"
    columns = amount_headers(settings.columns) if generic else connector.amount_columns
    style = NumberStyle(getattr(settings, "number_style", "auto"))
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
    connector: FileDropConnector, kept: bytes, recorded_style: str | None
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
            self._writer.writerow(["row", "column", "reason", *self.header])
        self._writer.writerow([error.row, error.column or "", error.reason, *error.values])

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


@dataclass
class _Batch:
    records: list[Record] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    rows: int = 0


def _take(rows: Iterator[Record | RowError], size: int, errors: ErrorsFile) -> _Batch:
    """The next `size` rows (runs in a worker thread: mapping is CPU work)."""
    batch = _Batch()
    records, bad = batch.records, batch.errors
    for item in rows:
        if isinstance(item, RowError):
            bad.append(item)
            errors.write(item)
        else:
            records.append(item)
        if len(records) + len(bad) >= size:
            break
    batch.rows = len(records) + len(bad)
    return batch


class FileImporter:
    """Imports CSV files for file-drop connections into the store."""

    def __init__(
        self, store: Store, routes: Routes, clock: Clock, *, batch_rows: int = BATCH_ROWS
    ) -> None:
        self._store = store
        self._routes = routes
        self._clock = clock
        self._batch_rows = batch_rows

    async def import_path(
        self,
        connector: FileDropConnector,
        path: Path,
        *,
        name: str | None = None,
        channel: str = "file",
        errors_path: Path | None = None,
        progress: Progress | None = None,
    ) -> ImportReport:
        """Import one file; the errors file goes to `errors_path` when a row is rejected."""
        name = name or path.name
        report = ImportReport(name=name)
        bound = connector.log.bind(file=name)
        limit = getattr(connector.settings, "max_file_bytes", 256 * 1_048_576)
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

        reject_file = getattr(connector.settings, "on_row_error", "skip") == "reject_file"

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
        connector: FileDropConnector,
        path: Path,
        report: ImportReport,
        errors_path: Path | None,
        *,
        dry_run: bool = False,
        progress: Progress | None = None,
        encoding: str | None = None,
    ) -> ImportReport:
        report = ImportReport(name=report.name, sha256=report.sha256, size=report.size)
        with open_regular(path) as handle:
            stream = await asyncio.to_thread(open_for, connector, handle, encoding)
            report.header = stream.header
            rows = records_of(connector, stream)
            errors = ErrorsFile(errors_path, stream.header)
            try:
                while True:
                    # Mapping and committing take turns rather than overlap: both need the GIL,
                    # and the writer gives it up at every SQLite step, so overlapping them made
                    # each step wait out the mapper's switch interval (5x slower, measured).
                    batch = await asyncio.to_thread(_take, rows, self._batch_rows, errors)
                    if not batch.rows:
                        break
                    report.rows += batch.rows
                    report.rejected += len(batch.errors)
                    room = KEEP_ERRORS - len(report.errors)
                    report.errors.extend(batch.errors[: max(room, 0)])
                    if not dry_run:
                        await self._commit(connector, report.sha256, batch, stream)
                    report.imported += len(batch.records)
                    if progress is not None:
                        progress(report.rows)
            except BaseException:
                errors.discard()
                raise
            report.errors_path = errors.finish()
        return report

    async def _commit(
        self, connector: FileDropConnector, sha256: str, batch: _Batch, stream: CsvStream
    ) -> None:
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
            writer = csv.writer(line, delimiter=stream.delimiter)
            writer.writerow(stream.header)
            writer.writerow(error.values)
            style = stream.style.value if stream.style is not None else NumberStyle.AUTO.value
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
            outcomes = Counter(r.outcome.value for r in results[0].records)
            for outcome, count in outcomes.items():
                metrics.child(metrics.RECORDS_INGESTED, source, "file", outcome).inc(count)
        new_dead = sum(1 for r in results if r.dead_letter_id is not None)
        if new_dead:
            metrics.child(metrics.DEAD_LETTERS, "row", source).inc(new_dead)
