"""Poll benchmark: 1,000 poll connections against one local fake vendor in one daemon process.

Prints CPU seconds per poll cycle, idle CPU between polls, peak RSS, and the lag from a sale's
appearance at the vendor to its commit. See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

HERE = Path(__file__).parent
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """CPU seconds of `pid` and its live children (the daemon's store writer process)."""
    return sum(_own_cpu_seconds(p) for p in _tree(pid))


def _own_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _tree(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").iterdir():
            todo += [int(child) for child in (task / "children").read_text().split()]
    return found


def peak_rss_mb(pid: int) -> float:
    """Peak RSS of `pid` plus that of its live children."""
    total = 0.0
    for each in _tree(pid):
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1]) / 1024
    return total


# `--writer-thread`: the store's group commit on a thread of the daemon, as before 2026-12-04.
WRITER_PROCESS = True


def config(outlets: int, vendor: str, interval: str, db: Path) -> dict[str, object]:
    return {
        "store": {"url": f"sqlite:///{db}", "writer_process": WRITER_PROCESS},
        "server": {"public": {"host": "127.0.0.1", "port": free_port()}},
        "log": {"level": "warning", "format": "json"},
        "outlets": [
            {
                "id": f"outlet-{n}",
                "name": f"Outlet {n}",
                "connectors": {
                    "qasir": {
                        "mode": "poll",
                        "api_key": f"key-{n}",
                        "base_url": f"{vendor}/v1",
                        "interval": interval,
                        "overlap": "30s",
                    }
                },
            }
            for n in range(outlets)
        ],
    }


def ran_once(db: Path) -> int:
    """How many connections have finished a run."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM connection_states").fetchone()[0])
    except sqlite3.Error:
        return 0


def lag_seconds(db: Path, since: datetime) -> list[float]:
    """Commit time minus the sale's time at the vendor (whole seconds there), per new sale."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT created_at, source_updated_at FROM records WHERE source_updated_at >= ?",
            (since.strftime("%Y-%m-%dT%H:%M:%S"),),
        ).fetchall()
    return sorted(
        (datetime.fromisoformat(c) - datetime.fromisoformat(s)).total_seconds() for c, s in rows
    )


def phase(
    outlets: int, interval: str, seconds: float, settle: float, work: Path
) -> dict[str, float]:
    port = free_port()
    vendor = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "fake_server.py"),
            "--port",
            str(port),
            "--outlets",
            str(outlets),
        ],
        stdout=subprocess.PIPE,
    )
    assert vendor.stdout is not None and vendor.stdout.readline().strip() == b"ready"
    db = work / f"poll-{interval}.db"
    path = work / f"poll-{interval}.yaml"
    path.write_text(yaml.safe_dump(config(outlets, f"http://127.0.0.1:{port}", interval, db)))
    daemon = subprocess.Popen(
        [sys.executable, "-m", "sambung", "run", "-c", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=(work / f"daemon-{interval}.log").open("wb"),
    )
    try:
        # Until every connection has finished its start-up run (the store says so), then a
        # little more: on a busy machine the first thousand runs take longer than on a quiet one.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and ran_once(db) < outlets:
            time.sleep(0.5)
        time.sleep(settle)
        started_at = datetime.now(UTC)
        cpu0, t0 = cpu_seconds(daemon.pid), time.monotonic()
        time.sleep(seconds)
        cpu1, t1 = cpu_seconds(daemon.pid), time.monotonic()
        rss = peak_rss_mb(daemon.pid)
        lags = lag_seconds(db, started_at)
    finally:
        daemon.terminate()
        daemon.wait(30)
        vendor.terminate()
        vendor.wait(10)
    return {
        "cpu": cpu1 - cpu0,
        "wall": t1 - t0,
        "rss": rss,
        "lag_p50": lags[len(lags) // 2] if lags else float("nan"),
        "lag_p95": lags[int(len(lags) * 0.95)] if lags else float("nan"),
        "lag_max": lags[-1] if lags else float("nan"),
        "lags": len(lags),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--outlets", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--writer-thread", action="store_true", help="store.writer_process: false")
    args = parser.parse_args()
    global WRITER_PROCESS
    WRITER_PROCESS = not args.writer_thread
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        busy = phase(args.outlets, "15s", args.duration, settle=5.0, work=work)
        cycles = busy["wall"] / 15.0
        print(f"connections: {args.outlets} (qasir, one account each, interval 15s)")
        print(f"CPU per poll cycle (all {args.outlets} polls): {busy['cpu'] / cycles:.2f} s")
        print(f"CPU while polling: {100 * busy['cpu'] / busy['wall']:.1f} % of a core")
        print(
            f"lag vendor -> commit: p50 {busy['lag_p50']:.1f} s, p95 {busy['lag_p95']:.1f} s,"
            f" max {busy['lag_max']:.1f} s over {busy['lags']} new sales"
            " (vendor times are whole seconds)"
        )
        idle = phase(args.outlets, "10m", 30.0, settle=2.0, work=work)
        idle_share = 100 * idle["cpu"] / idle["wall"]
        # /proc counts CPU in clock ticks (10 ms): over 30 s that is a resolution of 0.03 %.
        print(f"idle CPU between polls (interval 10m): {idle_share:.2f} % of a core")
        print(f"peak RSS (daemon + writer process): {max(busy['rss'], idle['rss']):.0f} MB")


if __name__ == "__main__":
    main()
