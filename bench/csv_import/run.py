"""Benchmark: a generated Pawoon CSV export imported through `sambung import`.

Prints rows/s and the importer's peak RSS against the targets (>= 50,000 rows/s, < 200 MB).
Not a test: run it by hand (`make bench-csv-import` or `.venv/bin/python bench/csv_import/run.py`).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

TARGET_ROWS_PER_SECOND = 50_000
TARGET_PEAK_RSS_MB = 200
ITEMS = ("Es Kopi Susu Gula Aren x1", "Croissant x2", "Americano x1, Roti Bakar x1", "Teh x1")
CONFIG = """\
store: {url: "sqlite:///./bench.db"}
log: {level: warning, format: json}
outlets:
  - id: kemang
    name: Kopi Senja Kemang
    timezone: Asia/Jakarta
    connectors:
      pawoon: {mode: file-drop, webhook_secret: bench-secret-not-used-here}
"""


def generate(path: Path, rows: int, seed: int = 7, *, interleaved_days: bool = False) -> None:
    """A Pawoon export in Indonesian style (`Rp 27.500`, `;`), written in chunks.

    Rows are in time order over November 1-28, as a till's export is. `interleaved_days`
    writes the order of the earlier benchmark instead (row n on day 1 + n % 28), which makes
    the store's business-date index take every row at a different place.
    """
    rng = random.Random(seed)
    span = 28 * 86_400
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("Date;Transaction ID;Total;Tax;Items\n")
        chunk = []
        for n in range(rows):
            total = rng.randrange(5, 600) * 500
            tax = total // 11
            if interleaved_days:
                day, second = 1 + n % 28, n % 86_400
            else:
                day, second = divmod(n * span // rows, 86_400)
                day += 1
            amounts = f"Rp {total:,};Rp {tax:,}".replace(",", ".")  # Indonesian grouping
            chunk.append(
                f"2026-11-{day:02d} {second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d};"
                f"PWN-{n:08d};{amounts};{ITEMS[n % len(ITEMS)]}\n"
            )
            if len(chunk) == 10_000:
                out.write("".join(chunk))
                chunk.clear()
        out.write("".join(chunk))


def _children(pid: int) -> list[int]:
    try:
        return [int(each) for each in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


def _rss_kb(pid: int) -> int:
    """The resident set of a process in KiB (Linux /proc; 0 elsewhere or once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds a process has used so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


@dataclass
class Run:
    """One import: wall seconds, rows stored, peak RSS and CPU of the importer and its worker."""

    seconds: float
    stored: int
    returncode: int
    peak_mb: float  # the importer's own peak (ru_maxrss covers the larger process alone)
    summed_mb: float  # importer and worker together, sampled
    importer_cpu: float
    worker_cpu: float  # sampled until it exits: within a tenth of a second


def import_once(work: Path, export: Path) -> Run:
    """Import the export into a new store through `sambung import`; measure it."""
    for stale in work.glob("bench.db*"):
        stale.unlink()
    sambung = [sys.executable, "-m", "sambung"]
    command = [*sambung, "import", "-c", "sambung.yaml", "--outlet", "kemang"]
    command += ["--connector", "pawoon", str(export)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    importer = subprocess.Popen(command, cwd=work, env={**os.environ})
    summed_kb, worker_cpu = 0, {}
    while importer.poll() is None:
        # The importer maps large files in a worker process: both count. This is their sum,
        # sampled (pages they share count twice).
        workers = _children(importer.pid)
        summed_kb = max(summed_kb, sum(map(_rss_kb, (importer.pid, *workers))))
        worker_cpu.update({pid: _cpu_seconds(pid) for pid in workers})
        time.sleep(0.1)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    total_cpu = sum(
        getattr(after, name) - getattr(before, name) for name in ("ru_utime", "ru_stime")
    )
    with sqlite3.connect(work / "bench.db") as conn:
        stored = conn.execute("SELECT COUNT(*) FROM records").fetchone()[0]
    worker = sum(worker_cpu.values())
    return Run(
        seconds=seconds,
        stored=stored,
        returncode=importer.returncode,
        peak_mb=after.ru_maxrss / 1024,
        summed_mb=summed_kb / 1024,
        importer_cpu=total_cpu - worker,
        worker_cpu=worker,
    )


def main() -> int:
    """Generate, import (`--repeat` times), verify the row count, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="imports to run; the median is the figure (commits wait on the disk, which varies)",
    )
    parser.add_argument(
        "--interleaved-days",
        action="store_true",
        help="rows on day 1 + n %% 28 in turn, as the benchmark generated them before 2026-11-27",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sambung-csv-bench-"))
    export = work / "pawoon-export.csv"
    started = time.perf_counter()
    generate(export, args.rows, interleaved_days=args.interleaved_days)
    size_mb = export.stat().st_size / 1e6
    print(
        f"generated {args.rows:,} rows ({size_mb:.1f} MB) in {time.perf_counter() - started:.1f}s"
    )
    (work / "sambung.yaml").write_text(CONFIG, encoding="utf-8")
    runs = []
    for number in range(1, args.repeat + 1):
        run = import_once(work, export)
        runs.append(run)
        print(
            f"run {number}: {run.stored:,} records in {run.seconds:.1f}s (process start included):"
            f" {args.rows / run.seconds:,.0f} rows/s; CPU importer {run.importer_cpu:.1f}s,"
            f" worker {run.worker_cpu:.1f}s; peak RSS {run.peak_mb:,.0f} MB,"
            f" summed {run.summed_mb:,.0f} MB"
        )
    median = statistics.median(run.seconds for run in runs)
    peak = max(run.peak_mb for run in runs)
    print(
        f"rows/s:   {args.rows / median:,.0f}  median of {len(runs)}"
        f" (target >= {TARGET_ROWS_PER_SECOND:,})"
    )
    print(f"peak RSS: {peak:,.0f} MB  (target < {TARGET_PEAK_RSS_MB})")
    print(
        f"peak RSS, importer and worker summed: {max(run.summed_mb for run in runs):,.0f} MB"
        " (sampled)"
    )
    if not args.keep:
        for path in sorted(work.iterdir(), reverse=True):
            path.unlink()
        work.rmdir()
    ok = all(run.returncode == 0 and run.stored == args.rows for run in runs)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
