"""The file-drop runner: watch each connection's inbox, import settled files, move them on.

A file is read only once its size and modification time have held still for `settle_seconds`
(a POS or a person may still be writing it). Only regular files directly in the inbox count:
symlinks, folders, hidden and temporary names (`.~lock…`, `~$…`, `*.tmp`, `*.part`) are left
alone. After its rows are committed a file moves to `processed/`; a file with rejected rows, or
one that cannot be read, moves to `failed/` beside `<name>.errors.csv`. A crash before the move
leaves it in the inbox, and the re-import upserts the same records again: nothing doubles.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import os
import stat
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from sambung.connectors import FileDropConnector, FileDropSettings, settings_as
from sambung.runtime import supervision

from .connections import file_drop_connections, file_drop_connector
from .controls import is_paused
from .csvfiles import spreadsheet_safe
from .csvimport import FileImporter, ImportReport

if TYPE_CHECKING:
    from sambung.clock import Clock
    from sambung.config import Connection, LoadedConfig
    from sambung.store import Store
    from sambung.store.controls import ControlStore

# `Replica.own(lease, work)`: run `work` while holding the lease (the runtime passes it in).
Own = Callable[[str, Callable[[], Awaitable[None]]], Awaitable[None]]

log = structlog.get_logger(__name__)

TEMPORARY_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".swp")
PROCESSED, FAILED = "processed", "failed"


def inbox_of(loaded: LoadedConfig, connection: Connection) -> Path:
    """A connection's inbox: `inbox:` from its block, else under the data folder."""
    configured = settings_as(connection.settings, FileDropSettings).inbox
    if configured:
        path = Path(configured).expanduser()
        return path if path.is_absolute() else loaded.base_dir / path
    return loaded.base_dir / "data" / "inbox" / connection.outlet.id / connection.name


def is_temporary(name: str) -> bool:
    """Hidden, lock and partial-download names: someone is still working on that file."""
    lowered = name.lower()
    return name.startswith((".", "~$")) or lowered.endswith(TEMPORARY_SUFFIXES)


@dataclass
class _Sighting:
    size: int
    mtime_ns: int
    since: float


class InboxWatcher:
    """Watches one inbox and imports its files through the shared `FileImporter`."""

    def __init__(
        self,
        connector: FileDropConnector[FileDropSettings],
        importer: FileImporter,
        inbox: Path,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        controls: ControlStore | None = None,
    ) -> None:
        self.connector = connector
        # Operator pauses (`sambung pause`): a paused inbox is not scanned.
        self.controls = controls
        self.importer = importer
        self.inbox = inbox
        settings = connector.settings
        self.settle_seconds = settings.settle_seconds
        self.poll_seconds = settings.poll_seconds
        self._monotonic = monotonic
        self._sleep = sleep
        self._seen: dict[str, _Sighting] = {}
        self._ignored: set[str] = set()
        self.log = connector.log.bind(inbox=str(inbox))

    async def run(self) -> None:
        """Scan forever (until cancelled)."""
        self.inbox.mkdir(parents=True, exist_ok=True)
        self.log.info("inbox.watching", settle_seconds=self.settle_seconds)
        while True:
            # Paused by an operator: files wait in the inbox (nothing lost) until resumed.
            if not await is_paused(
                self.controls, self.connector.outlet.id, self.connector.name, self.log
            ):
                await self.scan_once()
            supervision.cycle_done()
            await self._sleep(self.poll_seconds)

    async def scan_once(self) -> list[ImportReport]:
        """Import every file that has settled since the last scan; returns their reports."""
        reports = []
        for name in self._settled():
            reports.append(await self._import(name))
        return reports

    def _settled(self) -> list[str]:
        now = self._monotonic()
        present: set[str] = set()
        ready: list[str] = []
        try:
            entries = sorted(os.scandir(self.inbox), key=lambda e: e.name)
        except FileNotFoundError:
            self.inbox.mkdir(parents=True, exist_ok=True)
            return []
        for entry in entries:
            name = entry.name
            if is_temporary(name) or name in (PROCESSED, FAILED):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(info.st_mode):
                if name not in self._ignored:
                    self._ignored.add(name)
                    kind = "symlink" if stat.S_ISLNK(info.st_mode) else "not a regular file"
                    self.log.warning("file.ignored", file=name, reason=kind)
                continue
            present.add(name)
            seen = self._seen.get(name)
            if seen is None or (seen.size, seen.mtime_ns) != (info.st_size, info.st_mtime_ns):
                self._seen[name] = _Sighting(info.st_size, info.st_mtime_ns, now)
            elif now - seen.since >= self.settle_seconds:
                ready.append(name)
        for gone in set(self._seen) - present:
            del self._seen[gone]
        self._ignored &= {e.name for e in entries}
        return ready

    async def _import(self, name: str) -> ImportReport:
        path = self.inbox / name
        failed_dir = self.inbox / FAILED
        target = _free_name(failed_dir, name)
        errors_path = failed_dir / f"{target}.errors.csv"
        self.log.info("file.importing", file=name)
        report = await self.importer.import_path(
            self.connector, path, name=name, errors_path=errors_path
        )
        self._seen.pop(name, None)
        if report.file_error is not None and report.errors_path is None:
            await asyncio.to_thread(_write_file_error, errors_path, report.file_error)
            report.errors_path = errors_path
        if report.ok or report.duplicate:
            destination = self.inbox / PROCESSED / _free_name(self.inbox / PROCESSED, name)
        else:
            destination = failed_dir / target
        destination.parent.mkdir(parents=True, exist_ok=True)
        # Taken away meanwhile: it is recorded either way.
        with contextlib.suppress(FileNotFoundError):
            os.replace(path, destination)
        self.log.info(
            "file.moved",
            file=name,
            to=str(destination.relative_to(self.inbox)),
            imported=report.imported,
            rejected=report.rejected,
            duplicate=report.duplicate,
            error=report.file_error,
        )
        return report


def _free_name(folder: Path, name: str) -> str:
    """`name`, or `name` with a counter before its suffix if the folder already has one."""
    candidate, stem, suffix, counter = name, Path(name).stem, Path(name).suffix, 1
    while (folder / candidate).exists() or (folder / f"{candidate}.errors.csv").exists():
        counter += 1
        candidate = f"{stem}.{counter}{suffix}"
    return candidate


def _write_file_error(path: Path, reason: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "column", "reason"])
        writer.writerow(["", "", spreadsheet_safe(reason)])


def start_file_drop(
    loaded: LoadedConfig,
    store: Store,
    clock: Clock,
    start_loop: Callable[..., None],
    own: Own,
) -> None:
    """Start one supervised inbox loop per connection whose mode includes file-drop."""
    importer = FileImporter(store, loaded.sinks_for, clock)
    for connection in file_drop_connections(loaded):
        connector = file_drop_connector(connection, clock)
        watcher = InboxWatcher(connector, importer, inbox_of(loaded, connection), controls=store)
        lease = f"filedrop:{connection.outlet.id}/{connection.name}"
        # One replica at a time imports an inbox: two would race to move the same file.
        start_loop(
            lease,
            # Not watched for stalls: importing one large export may rightly take many minutes.
            partial(own, lease, watcher.run),
            outlet=connection.outlet.id,
            connector=connection.name,
        )
