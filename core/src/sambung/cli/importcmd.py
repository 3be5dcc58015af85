"""`sambung import`: import CSV files by hand, with a progress line and a summary table."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import TextIO

from sambung import logs
from sambung.clock import SystemClock
from sambung.config import LoadedConfig
from sambung.intake.connections import file_drop_connector, find_connection
from sambung.intake.csvimport import FileImporter, ImportReport
from sambung.runtime.daemon import tune_gc
from sambung.store import open_store

from .loading import Commands, check_outlet, load


class ProgressLine:
    """Rows and rows/s on one stderr line, redrawn at most ten times a second."""

    def __init__(self, name: str, out: TextIO = sys.stderr) -> None:
        self.name, self.out = name, out
        self.started = time.perf_counter()
        self._drawn = 0.0
        self.live = out.isatty()

    def update(self, rows: int) -> None:
        """Show the rows read so far."""
        now = time.perf_counter()
        if not self.live or now - self._drawn < 0.1:
            return
        self._drawn = now
        rate = rows / max(now - self.started, 1e-9)
        self.out.write(f"\r{self.name}: {rows:,} rows  {rate:,.0f} rows/s ")
        self.out.flush()

    def done(self, report: ImportReport) -> float:
        """Clear the line; returns the elapsed seconds."""
        elapsed = time.perf_counter() - self.started
        if self.live:
            self.out.write("\r\033[K")
            self.out.flush()
        return elapsed


def run_import(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    """Import every path given; exit status 1 if any row or file was rejected."""
    connection = find_connection(loaded, args.outlet, args.connector)
    clock = SystemClock()
    connector = file_drop_connector(connection, clock, bound_to="cli")

    async def go() -> list[tuple[ImportReport, float]]:
        store = open_store(loaded.config.store.url, base_dir=loaded.base_dir)
        await store.open()
        # The daemon's collector settings: a batch allocates tens of thousands of short-lived
        # objects, and the default thresholds ran full collections over them (+20 % rows/s).
        tune_gc()
        results = []
        try:
            importer = FileImporter(store, loaded.sinks_for, clock)
            for path in args.paths:
                progress = ProgressLine(path.name)
                report = await importer.import_path(
                    connector,
                    path,
                    channel="cli",
                    errors_path=path.with_name(path.name + ".errors.csv"),
                    progress=progress.update,
                )
                results.append((report, progress.done(report)))
        finally:
            await store.close()
        return results

    results = asyncio.run(go())
    print(f"{'file':<32} {'rows':>10} {'imported':>10} {'rejected':>9} {'rows/s':>10}  result")
    failed = False
    for report, seconds in results:
        if report.duplicate:
            result = "already imported"
        elif report.file_error:
            result = f"refused: {report.file_error}"
        elif report.rejected:
            result = f"errors in {report.errors_path}"
        else:
            result = "ok"
        failed |= not report.ok and not report.duplicate
        rate = f"{report.rows / seconds:,.0f}" if report.rows and seconds else "-"
        print(
            f"{report.name[:32]:<32} {report.rows:>10,} {report.imported:>10,}"
            f" {report.rejected:>9,} {rate:>10}  {result}"
        )
    return 1 if failed else 0


def add_import_command(commands: Commands) -> None:
    """Register `sambung import` on the CLI's subcommands."""
    sub = commands.add(
        "import",
        "Import CSV exports into the store (the file-drop import path, by hand).",
        _handler,
    )
    sub.add_argument("--outlet", required=True)
    sub.add_argument("--connector", required=True)
    sub.add_argument("paths", nargs="+", type=Path, metavar="PATH")


def _handler(args: argparse.Namespace) -> int:
    _, loaded = load(args)
    check_outlet(loaded, args.outlet)
    logs.configure(level=loaded.config.log.level, fmt=loaded.config.log.format)
    return run_import(args, loaded)
