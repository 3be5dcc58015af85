"""Time the store reads behind the console and the metrics refresh, over bench/console's month.

    .venv/bin/python bench/console/store_reads.py [--postgres URL] [--days 30] [--per-day 300]

Seeds one outlet's month as `bench/console/run.py` does, then times `list_deliveries` (every
filter the console and the CLI use) and `outbox_stats`, each RUNS times; prints the median and
the slowest call. SQLite by default; `--postgres URL` runs it in a fresh schema of that server.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sambung.store import DeliveryQuery, Store
from sambung.store.factory import open_store
from sambung.store.postgres import create_schema, drop_schema

sys.path.insert(0, str(Path(__file__).parent))
from run import seed  # the console bench's month, seeded the same way

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


async def timed(runs: int, call: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
    """Median and slowest of `runs` calls, in ms."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        await call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), max(times)


async def measure(url: str, days: int, per_day: int, runs: int) -> None:
    """Seed one store, then time each read."""
    store: Store = open_store(url, base_dir=Path(tempfile.gettempdir()))
    await store.open()
    try:
        print(f"seeded: {await seed(store, NOW, days, per_day)}")
        reads: dict[str, Callable[[], Awaitable[Any]]] = {
            "list_deliveries()": lambda: store.list_deliveries(DeliveryQuery()),
            "list_deliveries(sink=erp)": lambda: store.list_deliveries(DeliveryQuery("erp")),
            "list_deliveries(sink=backend, dead)": lambda: store.list_deliveries(
                DeliveryQuery("backend", "dead")
            ),
            "list_deliveries(outlet=kemang)": lambda: store.list_deliveries(
                DeliveryQuery(outlet="kemang")
            ),
            "outbox_stats()": store.outbox_stats,
        }
        for name, call in reads.items():
            median, most = await timed(runs, call)
            print(f"{name:40} median {median:7.2f} ms  max {most:7.2f} ms")
    finally:
        await store.close()


async def main(days: int, per_day: int, runs: int, postgres: str | None) -> None:
    """SQLite in a temporary folder, or a fresh PostgreSQL schema (dropped afterwards)."""
    if postgres is None:
        with tempfile.TemporaryDirectory() as folder:
            await measure(f"sqlite:///{folder}/sambung.db", days, per_day, runs)
        return
    name, url = await create_schema(postgres, prefix="bench")
    try:
        await measure(url, days, per_day, runs)
    finally:
        await drop_schema(postgres, name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--per-day", type=int, default=300)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--postgres", default=None)
    args = parser.parse_args()
    asyncio.run(main(args.days, args.per_day, args.runs, args.postgres))
