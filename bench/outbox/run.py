"""Drain an outbox of N rows into a local Standard Webhooks receiver; print deliveries/s.

    .venv/bin/python bench/outbox/run.py [--rows 100000] [--sink http|jsonl] [--concurrency 128]

The receiver runs in its own process(es) (`python -m sambung.testing.receiver`, verifying every
signature), so the dispatcher and the receiver do not share an event loop. The outbox is filled
first through `SqliteStore.ingest`, as webhooks would fill it; only the drain is timed. The
store runs as in production (WAL, synchronous=FULL).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import aiohttp
import yaml
from sambung.clock import SystemClock
from sambung.config import load_config
from sambung.delivery.outbox import Dispatcher
from sambung.models import LineItem, Transaction
from sambung.plugins import load_plugins
from sambung.store import IngestRequest
from sambung.store.sqlite import SqliteStore
from sambung.testing.daemon import free_port

SECRET = "whsec_" + base64.b64encode(b"bench-outbox-secret-32-bytes-long").decode()


def sale(index: int) -> Transaction:
    occurred = datetime(2026, 11, 26, 10, tzinfo=UTC) + timedelta(seconds=index)
    amount = Decimal(15000 + index % 50 * 500)
    return Transaction(
        outlet="kemang",
        source_system="pawoon",
        external_id=f"TRX-{index:07d}",
        occurred_at=occurred,
        business_date=occurred.date(),
        subtotal=amount,
        total=amount,
        items=(
            LineItem(name="Es Kopi Susu", quantity=Decimal(1), unit_price=amount, total=amount),
        ),
    )


def start_receivers(port: int, workers: int) -> list[subprocess.Popen[bytes]]:
    command = [sys.executable, "-m", "sambung.testing.receiver", "--port", str(port)]
    command += ["--secret", SECRET, "--reuse-port"]
    processes = [subprocess.Popen(command) for _ in range(workers)]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=1):
                return processes
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the receiver did not start")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def received(port: int, workers: int) -> int:
    """Verified requests the receivers counted (asked often enough to reach every worker)."""
    seen: dict[int, int] = {}
    for _ in range(workers * 20):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=5) as answer:
            stats = json.load(answer)
        seen[stats["pid"]] = stats["requests"]
        if len(seen) == workers:
            break
    return sum(seen.values())


async def bench(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="sambung-bench-outbox-"))
    port = free_port()
    sink: dict[str, object] = (
        {"type": "http", "url": f"http://127.0.0.1:{port}/webhooks", "secret": SECRET}
        if args.sink == "http"
        else {"type": "jsonl", "path": "out/records.jsonl"}
    )
    sink["concurrency"] = args.concurrency
    document = {
        "store": {"url": "sqlite:///./bench.db"},
        "outlets": [{"id": "kemang", "name": "Kemang", "connectors": {}}],
        "sinks": {"backend": sink},
    }
    (folder / "sambung.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")
    registry = load_plugins(frozenset())
    loaded = load_config(folder / "sambung.yaml", registry)

    store = SqliteStore(folder / "bench.db")
    await store.open()
    started = time.perf_counter()
    for start in range(0, args.rows, 1000):
        records = [sale(i) for i in range(start, min(start + 1000, args.rows))]
        await store.ingest(IngestRequest(records=records, routes=[("backend",)] * len(records)))
    print(f"filled {args.rows} outbox rows in {time.perf_counter() - started:.1f}s")

    receivers = start_receivers(port, args.receivers) if args.sink == "http" else []
    try:
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=0)
        ) as session:
            dispatcher = Dispatcher(
                store,
                loaded,
                registry,
                clock=SystemClock(),
                session=session,
                batch_size=args.batch,
            )
            await dispatcher.open()
            receiver_cpu = sum(cpu_seconds(process.pid) for process in receivers)
            started, cpu = time.perf_counter(), time.process_time()
            delivered = 0
            while True:
                claimed = await dispatcher.drain_once("backend")
                if claimed == 0:
                    break
                delivered += claimed
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu
            receiver_cpu = sum(cpu_seconds(p.pid) for p in receivers) - receiver_cpu
            await dispatcher.close()
        stats = await store.outbox_stats()
        done = stats["backend"].delivered
        print(
            f"sink={args.sink} rows={args.rows} concurrency={args.concurrency} "
            f"batch={args.batch} receivers={args.receivers}"
        )
        print(
            f"delivered {done} of {args.rows} in {elapsed:.2f}s: {done / elapsed:,.0f} deliveries/s"
        )
        print(
            f"CPU: dispatcher {cpu:.2f}s ({done / cpu:,.0f} deliveries per CPU-second),"
            f" receiver(s) {receiver_cpu:.2f}s; machine: {os.cpu_count()} CPUs,"
            f" load average {os.getloadavg()[0]:.2f} at the end"
        )
        if args.sink == "http":
            print(f"receiver verified {received(port, args.receivers)} requests")
    finally:
        for process in receivers:
            process.terminate()
            process.wait(10)
        await store.close()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--sink", choices=["http", "jsonl"], default="http")
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--receivers", type=int, default=max(1, min(4, (os.cpu_count() or 2) // 2)))
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
