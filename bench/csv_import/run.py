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
import subprocess
import sys
import tempfile
import time
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


def generate(path: Path, rows: int, seed: int = 7) -> None:
    """A Pawoon export in Indonesian style (`Rp 27.500`, `;`), written in chunks."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("Date;Transaction ID;Total;Tax;Items\n")
        chunk = []
        for n in range(rows):
            total = rng.randrange(5, 600) * 500
            tax = total // 11
            day, second = 1 + n % 28, n % 86_400
            chunk.append(
                f"2026-11-{day:02d} {second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d};"
                f"PWN-{n:08d};Rp {total:,};Rp {tax:,};{ITEMS[n % len(ITEMS)]}\n".replace(",", ".")
            )
            if len(chunk) == 10_000:
                out.write("".join(chunk))
                chunk.clear()
        out.write("".join(chunk))


def _tree_rss_kb(pid: int) -> int:
    """The resident set of a process and its children, in KiB (Linux /proc; 0 elsewhere)."""
    total = 0
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        for each in (pid, *map(int, children)):
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    except (OSError, ValueError):
        pass
    return total


def main() -> int:
    """Generate, import, verify the row count, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sambung-csv-bench-"))
    export = work / "pawoon-export.csv"
    started = time.perf_counter()
    generate(export, args.rows)
    size_mb = export.stat().st_size / 1e6
    print(
        f"generated {args.rows:,} rows ({size_mb:.1f} MB) in {time.perf_counter() - started:.1f}s"
    )
    (work / "sambung.yaml").write_text(CONFIG, encoding="utf-8")
    sambung = [sys.executable, "-m", "sambung"]
    command = [*sambung, "import", "-c", "sambung.yaml", "--outlet", "kemang"]
    command += ["--connector", "pawoon", str(export)]
    started = time.perf_counter()
    importer = subprocess.Popen(command, cwd=work, env={**os.environ})
    summed_kb = 0
    while importer.poll() is None:
        # The importer maps large files in a worker process: both count. ru_maxrss below is
        # the larger of the two alone; this is their sum, sampled (pages they share count twice).
        summed_kb = max(summed_kb, _tree_rss_kb(importer.pid))
        time.sleep(0.1)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    with sqlite3.connect(work / "bench.db") as conn:
        stored = conn.execute("SELECT COUNT(*) FROM records").fetchone()[0]
    rate = args.rows / seconds
    print(f"imported {stored:,} records in {seconds:.1f}s (process start included)")
    print(f"rows/s:   {rate:,.0f}  (target >= {TARGET_ROWS_PER_SECOND:,})")
    print(f"peak RSS: {peak_mb:,.0f} MB  (target < {TARGET_PEAK_RSS_MB})")
    print(f"peak RSS, importer and worker summed: {summed_kb / 1024:,.0f} MB (sampled)")
    if not args.keep:
        for path in sorted(work.iterdir(), reverse=True):
            path.unlink()
        work.rmdir()
    ok = importer.returncode == 0 and stored == args.rows
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
