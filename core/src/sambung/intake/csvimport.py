"""CSV import: one path for the inbox runner, the upload endpoint and `sambung import`.

A file is hashed first (a content already imported is not read again), then streamed: rows
are mapped in batches of thousands (`csvbatches`; in a worker thread, or for a large file in a
forked worker process that runs a batch ahead, `csvworker`), each batch one atomic `ingest`
(records upserted, so a re-import after a crash adds nothing). Every rejected row is kept as a
raw event plus a dead letter (stage `row`, deduplicated by file hash and row number) and
written to the errors file. Only once every batch is committed is the file recorded as
imported; the caller moves it afterwards.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

try:
    import fcntl
except ImportError:  # Windows: no fcntl, and no fork either
    fcntl = None  # type: ignore[assignment]

from sambung import metrics
from sambung.clock import Clock
from sambung.connectors import FileDropConnector, FileDropSettings
from sambung.errors import EncodingError, FileError, InvalidRecord
from sambung.store import ImportedFile, IngestRequest, IntakeStore, RawEvent
from sambung.store.base import printable

from .csvbatches import Batch, FileShape, open_regular
from .csvfiles import NumberStyle, RowError, spreadsheet_safe
from .csvworker import CAN_FORK, WORKER_FROM_BYTES, MappedBatches, MappedInProcess, MappedInThread
from .guard import ensure_own, rejection

log = structlog.get_logger(__name__)

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


class FileImporter:
    """Imports CSV files for file-drop connections into the store."""

    def __init__(
        self,
        store: IntakeStore,
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
        # Files this large are mapped in a worker process (see `MappedInProcess`).
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
        in_worker = report.size >= self._worker_from_bytes and CAN_FORK
        mapped: MappedBatches = (MappedInProcess if in_worker else MappedInThread)(
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
            committing: tuple[asyncio.Future[None], Batch] | None = None
            clock = asyncio.get_running_loop().time
            committed_at = 0.0

            def note_committed(_: object) -> None:
                nonlocal committed_at
                committed_at = clock()

            try:
                while (batch := await mapped.next()) is not None:
                    assert isinstance(batch, Batch)
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
        batch: Batch,
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
        batch: Batch,
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
            keys = {record.key[:3] for record in batch.records}  # (outlet, source, kind)
            try:
                ensure_own(
                    ((key_outlet, key_source) for key_outlet, key_source, _ in keys), outlet, source
                )
            except InvalidRecord as err:  # the connector, not the file: nothing more of it
                raise FileError(str(err)) from err
            # Routes depend on the kind alone: asked once per kind, not once per row.
            by_kind = {kind: routes_for(outlet, kind) for _, _, kind in keys}
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
            entry = rejection(
                "row",
                outlet,
                source,
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
