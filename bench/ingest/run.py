"""Webhook ingest throughput: the real sambung daemon against a bare aiohttp endpoint.

What is measured: requests per second and latency (p50, p99) of signed Pawoon
`transaction.created` webhooks posted at a fixed concurrency, first to the real daemon
(`python -m sambung run`: verify the HMAC, parse, map, commit to SQLite through the group-commit
writer with `synchronous=FULL`, and only then answer 200), then to `bare_server.py`, an aiohttp
app on the same interpreter and event loop that only reads the body and answers 200. The ratio
daemon/bare says how much of what aiohttp itself can serve is left once sambung does its work;
the target is 0.60 or more.

Every request is unique (its own `transaction_id`), so each one the daemon acknowledges is a new
record; afterwards the SQLite file is opened read-only and must hold every acknowledged record,
and no more than were sent. A daemon answer other than 2xx fails the run.

Why wrk: the machine has two cores. A load generator written in Python would need about as much
CPU per request as the server it drives, so it would measure itself as much as the server. wrk is
C with a LuaJIT hook: it spends a small fraction of one core, which leaves the other core to the
server process (the daemon's one event loop plus its SQLite writer thread). The requests are
generated and signed before the run and formatted in the Lua `init`, so the hot path only hands
out ready byte strings. The CPU each side used is reported, to show which one was the bottleneck.

Usage: `uv run python bench/ingest/run.py [--duration 20] [--concurrency 64] [--requests N]`
(needs `wrk`: `apt-get install -y wrk`). Results are printed and written to
`bench/results/ingest-<timestamp>.json`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import aiohttp
from budget import budget, print_budget
from payloads import WEBHOOK_PATH, Outlet, write_requests
from sambung.testing.daemon import free_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RESULTS_DIR = ROOT / "bench" / "results"
LUA_SCRIPT = HERE / "ingest.lua"
BARE_SERVER = HERE / "bare_server.py"

TARGET_RATIO = 0.60
HOST = "127.0.0.1"
OUTLETS = (
    Outlet("kemang", "Kemang", "bench-secret-kemang"),
    Outlet("senopati", "Senopati", "bench-secret-senopati"),
    Outlet("bintaro", "Bintaro", "bench-secret-bintaro"),
)
MEASURED_PREFIX = "TRX-"
WARMUP_PREFIX = "WRM-"
# Sizes the default --requests: above what the daemon can take even once it reaches the target.
REQUESTS_PER_SECOND = 7_500
STARTUP_TIMEOUT = 30.0
SHUTDOWN_TIMEOUT = 30.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """The benchmark could not run, or its results failed validation."""


# -- the servers ------------------------------------------------------------------------------


# Extra `store:` settings of every daemon the run starts (`--writer-thread`).
STORE_EXTRA: dict[str, str] = {}


def daemon_config(db: Path | str, port: int, sink: Path | None) -> str:
    """The daemon's YAML: one SQLite file (or a PostgreSQL URL), the public listener, every
    outlet on Pawoon webhooks, and one `jsonl` sink, so that every new record also writes its
    outbox row and the dispatcher delivers it, as in production."""
    url = db if isinstance(db, str) else f"sqlite:///{db}"
    lines = [
        f'store: {{url: "{url}"{"".join(f", {k}: {v}" for k, v in STORE_EXTRA.items())}}}',
        f"server: {{public: {{host: {HOST}, port: {port}}}}}",
        "log: {level: warning, format: json}",
        *([f'sinks: {{archive: {{type: jsonl, path: "{sink}"}}}}'] if sink else []),
        "outlets:",
    ]
    for outlet in OUTLETS:
        lines.append(
            f"  - {{id: {outlet.id}, name: {outlet.name}, timezone: Asia/Jakarta, connectors: "
            f'{{pawoon: {{mode: webhook, webhook_secret: "{outlet.secret}"}}}}}}'
        )
    return "\n".join(lines) + "\n"


class Server:
    """A server under test, run as a child process with its output going to a log file."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        port: int,
        log_path: Path,
        cwd: Path,
        health_path: str | None,
    ) -> None:
        self.name = name
        self.port = port
        self.log_path = log_path
        self._command = list(command)
        self._cwd = cwd
        self._health_path = health_path
        self._process: subprocess.Popen[bytes] | None = None
        self._log: TextIO | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def url(self, path: str) -> str:
        return f"http://{HOST}:{self.port}{path}"

    def __enter__(self) -> Server:
        self._log = self.log_path.open("w")
        env = {**os.environ, "SAMBUNG_LOG_LEVEL": "warning", "PYTHONUNBUFFERED": "1"}
        self._process = subprocess.Popen(
            self._command, cwd=self._cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop(check=False)
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_rest: object) -> None:
        self.stop(check=exc_type is None)  # never hide the error that is already on its way

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise BenchError(
                    f"{self.name} exited with {self._process.returncode} while "
                    f"starting:\n{self.log_tail()}"
                )
            if self._ready():
                return
            time.sleep(0.1)
        raise BenchError(f"{self.name} not ready after {STARTUP_TIMEOUT:.0f}s:\n{self.log_tail()}")

    def _ready(self) -> bool:
        if self._health_path is None:  # listening is being ready
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), 1):
                return True
            return False
        try:
            with urllib.request.urlopen(self.url(self._health_path), timeout=1) as answer:
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def cpu_seconds(self) -> float:
        """CPU seconds the server and its live child processes have used so far."""
        return sum(self.cpu_by_process().values())

    def cpu_by_process(self) -> dict[str, float]:
        """CPU seconds so far of the server and each live child, by a name for each."""
        found: dict[str, float] = {}
        for pid in _process_tree(self.pid):
            with contextlib.suppress(OSError):
                name = "main" if pid == self.pid else _process_name(pid)
                found[name] = found.get(name, 0.0) + _process_cpu(pid)
        return found

    def stop(self, *, check: bool = True) -> None:
        """SIGTERM, wait for a clean drain, kill only if it hangs; with `check`, want exit 0."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(SHUTDOWN_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        if check and process is not None and process.returncode != 0:
            raise BenchError(f"{self.name} exited with {process.returncode}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 10) -> str:
        if not self.log_path.exists():
            return "(no output)"
        text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(text) or "(no output)"


# -- the load ---------------------------------------------------------------------------------


@dataclass
class LoadResult:
    """What wrk measured against one target, plus the CPU each side spent."""

    target: str
    duration_s: float
    requests: int
    requests_per_s: float
    latency_ms: dict[str, float]
    statuses: dict[str, int]
    non_2xx: int
    socket_errors: dict[str, int]
    sent: int
    unique_sent: int
    wrapped: bool
    fresh: int
    server_cpu: float
    wrk_cpu: float
    # CPU microseconds the server (all its processes) spent per 2xx answer: the figure that
    # does not depend on what else the machine runs.
    cpu_us_per_ok: float
    # The same per process of the server (main, writer_process, intake workers).
    cpu_us_by_process: dict[str, float]
    wrk_output: str = field(repr=False)

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= int(status) < 300)

    @property
    def in_flight(self) -> int:
        """Requests sent whose answers wrk never read: the run ended while they were in flight."""
        return self.sent - self.requests


@dataclass(frozen=True)
class LoadSettings:
    duration: int
    warmup: int
    concurrency: int
    threads: int
    timeout: int


def run_wrk(
    server: Server,
    requests_file: Path,
    seconds: int,
    load: LoadSettings,
    profile: Profile | None = None,
) -> LoadResult:
    """Drive `server` with wrk for `seconds`, cycling through `requests_file`."""
    command = [
        "wrk",
        f"--threads={load.threads}",
        f"--connections={load.concurrency}",
        f"--duration={seconds}s",
        f"--timeout={load.timeout}s",
        f"--script={LUA_SCRIPT}",
        server.url(WEBHOOK_PATH.format(outlet=OUTLETS[0].id)),
        "--",
        str(requests_file),
        str(load.threads),
    ]
    children_before = _children_cpu()
    by_process_before = server.cpu_by_process()
    server_before = sum(by_process_before.values())
    wrk = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # wrk first formats every request (a second or two of its own CPU), then starts the load.
    # Its CPU up to the moment the server gets busy is set-up, not load generation.
    wrk_setup: float | None = None
    while wrk.poll() is None and wrk_setup is None:
        if server.cpu_seconds() - server_before > 0.02:
            with contextlib.suppress(OSError):
                wrk_setup = _process_cpu(wrk.pid)
        time.sleep(0.05)
    profiler = profile.start(server.pid, seconds) if profile is not None else None
    stdout, stderr = wrk.communicate()
    by_process = server.cpu_by_process()
    server_cpu = sum(by_process.values()) - server_before
    wrk_cpu = _children_cpu() - children_before - (wrk_setup or 0.0)
    if profiler is not None:
        assert profile is not None
        profile.finish(profiler)
    if wrk.returncode != 0:
        raise BenchError(f"wrk failed ({wrk.returncode}):\n{stdout}{stderr}")
    marker = next((line for line in stdout.splitlines() if line.startswith("WRK_RESULT ")), None)
    if marker is None:
        raise BenchError(f"wrk printed no WRK_RESULT line:\n{stdout}{stderr}")
    raw: dict[str, Any] = json.loads(marker.removeprefix("WRK_RESULT "))
    duration = raw["duration_us"] / 1e6
    statuses = {str(k): int(v) for k, v in sorted(raw["statuses"].items())}
    ok = sum(n for status, n in statuses.items() if 200 <= int(status) < 300)
    return LoadResult(
        target=server.name,
        duration_s=round(duration, 3),
        requests=raw["requests"],
        requests_per_s=round(raw["requests"] / duration, 1),
        latency_ms={name: round(us / 1000, 2) for name, us in raw["latency_us"].items()},
        statuses=statuses,
        non_2xx=sum(n for status, n in statuses.items() if not 200 <= int(status) < 300),
        socket_errors={k: int(v) for k, v in raw["errors"].items() if k != "status"},
        sent=raw["sent"],
        unique_sent=raw["unique_sent"],
        wrapped=raw["wrapped"],
        fresh=raw["fresh"],
        server_cpu=round(server_cpu / duration, 3),
        wrk_cpu=round(wrk_cpu / duration, 3),
        cpu_us_per_ok=round(server_cpu * 1e6 / ok, 1) if ok else 0.0,
        cpu_us_by_process={
            name: round((cpu - by_process_before.get(name, 0.0)) * 1e6 / ok, 1) if ok else 0.0
            for name, cpu in by_process.items()
        },
        wrk_output=stdout,
    )


def _process_cpu(pid: int) -> float:
    """User plus system CPU seconds a live process has used so far, all threads together."""
    # The fields after `(comm)` start at the 3rd (state); utime and stime are the 14th and 15th.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _process_name(pid: int) -> str:
    """What a child process runs: its `-m` module, else its program."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    words = [a.decode(errors="replace") for a in argv if a]
    if "-m" in words[:-1]:
        return words[words.index("-m") + 1].rsplit(".", 1)[-1]
    return Path(words[0]).name if words else str(pid)


def _process_tree(pid: int) -> list[int]:
    """`pid` and its live descendants (a daemon's store writer and intake workers)."""
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(child) for child in (task / "children").read_text().split()]
    return tree


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class Profile:
    """py-spy sampling the daemon during its measured run (figures then are not comparable)."""

    py_spy: str
    output: Path
    fmt: str
    gil_only: bool

    def start(self, pid: int, seconds: int) -> subprocess.Popen[bytes]:
        command = [
            self.py_spy,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(seconds),
            "--format",
            self.fmt,
            "--output",
            str(self.output),
            "--threads",
        ]
        if self.gil_only:
            command.append("--gil")
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def finish(self, process: subprocess.Popen[bytes]) -> None:
        _, stderr = process.communicate(timeout=60)
        if process.returncode != 0:
            print(f"warning: py-spy failed: {stderr.decode(errors='replace')}", file=sys.stderr)


# -- validation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreCheck:
    """What the daemon's SQLite file holds after it stopped, against what wrk saw."""

    measured_records: int
    total_records: int
    raw_events: int
    dead_letters: int
    acknowledged_new: int
    in_flight: int
    problems: tuple[str, ...]


# What the store check counts: records of the measured run, records, raw events, dead letters.
COUNT_QUERIES = (
    "SELECT count(*) FROM records WHERE kind = 'transaction' AND external_id LIKE '"
    + MEASURED_PREFIX
    + "%'",
    "SELECT count(*) FROM records",
    "SELECT count(*) FROM raw_events",
    "SELECT count(*) FROM dead_letters",
)


def sqlite_counts(db: Path) -> tuple[int, ...]:
    """The store check's counts from the daemon's SQLite file, opened read-only."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return tuple(int(conn.execute(sql).fetchone()[0]) for sql in COUNT_QUERIES)


def postgres_counts(url: str) -> tuple[int, ...]:
    """The store check's counts from the replicas' PostgreSQL schema."""
    import asyncio

    import asyncpg

    async def count() -> tuple[int, ...]:
        conn = await asyncpg.connect(url)
        try:
            return tuple([int(await conn.fetchval(sql)) for sql in COUNT_QUERIES])
        finally:
            await conn.close()

    return asyncio.run(count())


def check_store(counts: Sequence[int], measured: LoadResult, warmup: LoadResult) -> StoreCheck:
    """Every acknowledged record is stored; nothing beyond what was sent; nothing dead-lettered.

    wrk stops with up to `concurrency` requests in flight. The daemon still commits those (the
    commit is shielded from the client hanging up), so the file may hold a few more records than
    wrk saw acknowledged, but never more than acknowledged + in flight.
    """
    measured_records, total_records, raw_events, dead_letters = counts
    problems: list[str] = []
    low, high = measured.fresh, measured.fresh + measured.in_flight
    if not low <= measured_records <= high:
        problems.append(
            f"{measured_records} measured records stored, expected between {low} "
            f"(acknowledged as new) and {high} (plus in flight at the end)"
        )
    if not measured.wrapped and measured.fresh != measured.ok:
        problems.append(
            f"{measured.ok} unique requests answered 2xx but only {measured.fresh} "
            "said they were new"
        )
    every_high = high + warmup.fresh + warmup.in_flight
    if not measured.fresh + warmup.fresh <= total_records <= every_high:
        problems.append(
            f"{total_records} records in all, expected between "
            f"{measured.fresh + warmup.fresh} and {every_high}"
        )
    if raw_events != total_records:
        problems.append(f"{raw_events} raw events for {total_records} records (expected 1:1)")
    if dead_letters:
        problems.append(f"{dead_letters} dead letters (expected none)")
    return StoreCheck(
        measured_records,
        total_records,
        raw_events,
        dead_letters,
        measured.fresh,
        measured.in_flight,
        tuple(problems),
    )


def load_problems(result: LoadResult) -> list[str]:
    problems = []
    if result.non_2xx:
        problems.append(f"{result.target}: {result.non_2xx} non-2xx answers {result.statuses}")
    errors = {k: v for k, v in result.socket_errors.items() if v}
    if errors:
        problems.append(f"{result.target}: socket errors {errors}")
    return problems


# -- the run ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetRun:
    """One target's warm-up and measured load, and the end of what the server logged."""

    warmup: LoadResult
    measured: LoadResult
    log_tail: str


def bench_daemon(
    work: Path, files: RequestFiles, load: LoadSettings, profile: Profile | None, sink: bool
) -> tuple[TargetRun, StoreCheck]:
    db = work / "bench.db"
    config = work / "sambung.yaml"
    port = free_port()
    config.write_text(daemon_config(db, port, work / "records.jsonl" if sink else None))
    command = [sys.executable, "-m", "sambung", "run", "-c", str(config)]
    with Server("daemon", command, port, work / "daemon.log", work, "/healthz") as daemon:
        print(f"daemon: pid {daemon.pid} on port {port}; warming up {load.warmup}s ...")
        warmup = run_wrk(daemon, files.warmup, load.warmup, load)
        print(f"daemon: measuring {load.duration}s at concurrency {load.concurrency} ...")
        measured = run_wrk(daemon, files.measured, load.duration, load, profile)
    # The daemon has drained and closed the store: the file is now final.
    return TargetRun(warmup, measured, daemon.log_tail()), check_store(
        sqlite_counts(db), measured, warmup
    )


def split_requests(path: Path, parts: int) -> list[Path]:
    """The requests of `path` dealt into `parts` files, one per replica (no id in two files)."""
    if parts == 1:
        return [path]
    outputs = [path.with_name(f"{path.stem}.{n}of{parts}{path.suffix}") for n in range(parts)]
    handles = [output.open("w") for output in outputs]
    try:
        with path.open() as source:
            for number, line in enumerate(source):
                handles[number % parts].write(line)
    finally:
        for handle in handles:
            handle.close()
    return outputs


def combine(target: str, results: Sequence[LoadResult]) -> LoadResult:
    """Several wrk runs at once (one per replica) as one: sums, and the worst latency."""
    statuses: dict[str, int] = {}
    errors: dict[str, int] = {}
    for result in results:
        for status, n in result.statuses.items():
            statuses[status] = statuses.get(status, 0) + n
        for kind, n in result.socket_errors.items():
            errors[kind] = errors.get(kind, 0) + n
    return LoadResult(
        target=target,
        duration_s=max(r.duration_s for r in results),
        requests=sum(r.requests for r in results),
        requests_per_s=round(sum(r.requests_per_s for r in results), 1),
        latency_ms={k: max(r.latency_ms[k] for r in results) for k in results[0].latency_ms},
        statuses=dict(sorted(statuses.items())),
        non_2xx=sum(r.non_2xx for r in results),
        socket_errors=errors,
        sent=sum(r.sent for r in results),
        unique_sent=sum(r.unique_sent for r in results),
        wrapped=any(r.wrapped for r in results),
        fresh=sum(r.fresh for r in results),
        server_cpu=round(sum(r.server_cpu for r in results), 3),
        # Each wrk's figure counts every child reaped meanwhile: the largest is about the total.
        wrk_cpu=max(r.wrk_cpu for r in results),
        cpu_us_per_ok=round(
            sum(r.cpu_us_per_ok * r.ok for r in results) / max(1, sum(r.ok for r in results)), 1
        ),
        cpu_us_by_process={
            f"{n}.{name}": us
            for n, r in enumerate(results)
            for name, us in r.cpu_us_by_process.items()
        },
        wrk_output="\n".join(r.wrk_output for r in results),
    )


def run_replicas(
    target: str, servers: Sequence[Server], parts: Sequence[Path], seconds: int, load: LoadSettings
) -> LoadResult:
    """One wrk per replica at once, the connections shared out: round-robin by target port."""
    if len(servers) == 1:
        return replace(run_wrk(servers[0], parts[0], seconds, load), target=target)
    share = replace(load, concurrency=max(load.threads, load.concurrency // len(servers)))
    with ThreadPoolExecutor(len(servers)) as pool:
        runs = [
            pool.submit(run_wrk, server, part, seconds, share)
            for server, part in zip(servers, parts, strict=True)
        ]
        results = [run.result() for run in runs]
    return combine(target, results)


def bench_postgres(
    work: Path,
    files: RequestFiles,
    load: LoadSettings,
    postgres_url: str,
    replicas: int,
    sink: bool,
) -> tuple[TargetRun, StoreCheck]:
    """`replicas` daemons on one fresh PostgreSQL schema, each driven by its own wrk."""
    import asyncio

    from sambung.store.postgres import create_schema, drop_schema

    target = f"pg x{replicas}"
    schema, url = asyncio.run(create_schema(postgres_url, prefix="bench_ingest"))
    try:
        measured_parts = split_requests(files.measured, replicas)
        warmup_parts = split_requests(files.warmup, replicas)
        with contextlib.ExitStack() as stack:
            servers = []
            for n in range(replicas):
                port = free_port()
                config = work / f"pg{replicas}-{n}.yaml"
                config.write_text(
                    daemon_config(url, port, work / f"pg{replicas}-{n}.jsonl" if sink else None)
                )
                command = [sys.executable, "-m", "sambung", "run", "-c", str(config)]
                log = work / f"pg{replicas}-{n}.log"
                server = Server(f"{target}.{n}", command, port, log, work, "/healthz")
                servers.append(stack.enter_context(server))
            print(f"{target}: pids {[s.pid for s in servers]}; warming up {load.warmup}s ...")
            warmup = run_replicas(target, servers, warmup_parts, load.warmup, load)
            print(f"{target}: measuring {load.duration}s at concurrency {load.concurrency} ...")
            measured = run_replicas(target, servers, measured_parts, load.duration, load)
            tail = servers[0].log_tail()
        # Every replica has drained and closed its pool: the schema is final.
        counts = postgres_counts(url)
    finally:
        asyncio.run(drop_schema(postgres_url, schema))
    return TargetRun(warmup, measured, tail), check_store(counts, measured, warmup)


def bench_bare(work: Path, files: RequestFiles, load: LoadSettings) -> TargetRun:
    port = free_port()
    command = [sys.executable, str(BARE_SERVER), "--host", HOST, "--port", str(port)]
    with Server("bare", command, port, work / "bare.log", work, None) as bare:
        print(f"bare:   pid {bare.pid} on port {port}; warming up {load.warmup}s ...")
        warmup = run_wrk(bare, files.warmup, load.warmup, load)
        print(f"bare:   measuring {load.duration}s at concurrency {load.concurrency} ...")
        measured = run_wrk(bare, files.measured, load.duration, load)
    return TargetRun(warmup, measured, bare.log_tail())


@dataclass(frozen=True)
class RequestFiles:
    measured: Path
    warmup: Path


def prepare_requests(work: Path, count: int, warmup_count: int) -> RequestFiles:
    started = time.monotonic()
    files = RequestFiles(work / "requests.tsv", work / "warmup.tsv")
    size = write_requests(files.measured, count, OUTLETS, id_prefix=MEASURED_PREFIX)
    write_requests(files.warmup, warmup_count, OUTLETS, id_prefix=WARMUP_PREFIX)
    print(
        f"generated {count:,} signed requests ({size / count:.0f} bytes per line on average) "
        f"+ {warmup_count:,} for warm-up in {time.monotonic() - started:.1f}s"
    )
    return files


def print_table(runs: Sequence[LoadResult], ratio: float) -> None:
    header = (
        f"{'target':<8} {'requests/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} "
        f"{'server CPU':>11} {'wrk CPU':>8} {'CPU us/ok':>10}"
    )
    print()
    print(header)
    print("-" * len(header))
    for run in runs:
        print(
            f"{run.target:<8} {run.requests_per_s:>11,.1f} {run.latency_ms['p50']:>8.2f} "
            f"{run.latency_ms['p99']:>8.2f} {run.non_2xx:>8,} {run.server_cpu:>10.0%} "
            f"{run.wrk_cpu:>8.0%} {run.cpu_us_per_ok:>10.0f}"
        )
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    for run in runs:
        if len(run.cpu_us_by_process) > 1:
            parts = ", ".join(f"{k} {v:.0f}" for k, v in run.cpu_us_by_process.items())
            print(f"{run.target}: CPU µs per 2xx by process: {parts}")
    print(
        f"\nratio (daemon/bare throughput): {ratio:.2f} (target >= {TARGET_RATIO:.2f}: {verdict})"
    )


def environment() -> dict[str, Any]:
    def output(*command: str) -> str:
        try:
            done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
        except OSError:
            return ""
        return (done.stdout or done.stderr).strip()

    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "aiohttp": aiohttp.__version__,
        "wrk": output("wrk", "--version").splitlines()[0] if shutil.which("wrk") else None,
        "git_commit": output("git", "rev-parse", "HEAD"),
        "git_dirty": bool(output("git", "status", "--porcelain")),
    }


def write_results(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")


def _result_json(result: LoadResult) -> dict[str, Any]:
    data = asdict(result)
    del data["wrk_output"]
    data["in_flight_at_end"] = result.in_flight
    return data


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=20, help="seconds measured per target")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per target")
    parser.add_argument("--concurrency", type=int, default=64, help="open connections")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="wrk threads (default 1: the other core is the server's)",
    )
    parser.add_argument(
        "--requests",
        type=int,
        help="unique signed requests to pre-generate; more than the daemon can "
        f"take in one run (default: {REQUESTS_PER_SECOND:,} per second of "
        "--duration, at least 50,000)",
    )
    parser.add_argument("--timeout", type=int, default=30, help="wrk's per-request timeout (s)")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="OUT",
        help="record the daemon's measured run with py-spy into OUT",
    )
    parser.add_argument(
        "--profile-format",
        default="flamegraph",
        choices=("flamegraph", "raw", "speedscope"),
        help="py-spy's output format; `raw` is what profile_summary.py reads",
    )
    parser.add_argument(
        "--profile-gil",
        action="store_true",
        help="sample only the thread holding the GIL (py-spy --gil)",
    )
    parser.add_argument(
        "--writer-thread",
        action="store_true",
        help="store.writer_process: false (the SQLite group commit on a thread of the daemon)",
    )
    parser.add_argument(
        "--no-sink",
        action="store_true",
        help="configure no sink (no outbox rows, no deliveries), as runs before 2026-12-04 did",
    )
    parser.add_argument(
        "--budget-requests",
        type=int,
        default=5000,
        help="requests `budget.py` times each step of the webhook path on (0: skip the budget)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the work directory (requests, logs, SQLite file)"
    )
    parser.add_argument(
        "--postgres",
        nargs="?",
        const="postgresql://postgres@127.0.0.1:5432/test",
        metavar="URL",
        help="also run the daemon on PostgreSQL (a fresh schema in URL, default "
        "postgresql://postgres@127.0.0.1:5432/test) as each of --replicas replicas",
    )
    parser.add_argument(
        "--replicas",
        default="1,2",
        help="with --postgres: how many replicas, one wrk each (comma list, default 1,2)",
    )
    args = parser.parse_args(argv)
    if args.requests is None:
        args.requests = max(50_000, args.duration * REQUESTS_PER_SECOND)
    if args.concurrency < args.threads:
        parser.error("--concurrency must be at least --threads")
    if args.requests < args.threads:
        parser.error("--requests must be at least --threads")
    return args


@contextlib.contextmanager
def work_directory(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="sambung-bench-ingest-"))
    try:
        yield path
    finally:
        if keep:
            print(f"work directory kept: {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print(
            "error: wrk is not installed. It is the load generator of this benchmark; on "
            "Debian/Ubuntu install it with `apt-get install -y wrk` (see bench/README.md).",
            file=sys.stderr,
        )
        return 2
    profile = None
    if args.profile is not None:
        py_spy = shutil.which("py-spy")
        if py_spy is None:
            print(
                "error: --profile needs py-spy on PATH (`pip install py-spy`; see bench/README.md)",
                file=sys.stderr,
            )
            return 2
        profile = Profile(py_spy, args.profile.resolve(), args.profile_format, args.profile_gil)
    if args.writer_thread:
        STORE_EXTRA["writer_process"] = "false"
    load = LoadSettings(args.duration, args.warmup, args.concurrency, args.threads, args.timeout)
    stamp = datetime.now(UTC)

    try:
        with work_directory(args.keep) as work:
            warmup_requests = min(args.requests, max(10_000, args.warmup * REQUESTS_PER_SECOND))
            files = prepare_requests(work, args.requests, warmup_requests)
            daemon, store = bench_daemon(work, files, load, profile, not args.no_sink)
            postgres = [
                bench_postgres(work, files, load, args.postgres, int(n), not args.no_sink)
                for n in (args.replicas.split(",") if args.postgres else [])
            ]
            bare = bench_bare(work, files, load)
    except BenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1

    ratio = daemon.measured.requests_per_s / bare.measured.requests_per_s
    print_table([daemon.measured, *(run.measured for run, _ in postgres), bare.measured], ratio)
    components = budget(args.budget_requests) if args.budget_requests else {}
    if components:
        print_budget(components, bare.measured.cpu_us_per_ok)
        print(
            f"daemon in situ: {daemon.measured.cpu_us_per_ok:.0f} CPU µs per acknowledged event, "
            "all its processes summed"
        )
    problems = [*load_problems(daemon.measured), *store.problems]
    for run, check in postgres:
        problems += [
            *load_problems(run.measured),
            *(f"{run.measured.target}: {p}" for p in check.problems),
        ]
        print(
            f"store check {run.measured.target}: {check.measured_records:,} records stored for "
            f"{check.acknowledged_new:,} acknowledged as new (+{check.in_flight} in flight)"
        )
    for problem in load_problems(bare.measured):
        print(f"warning: {problem}")
    if daemon.measured.wrapped:
        print(
            f"warning: the daemon run sent more than --requests={args.requests:,}; some "
            "requests were duplicates. Raise --requests."
        )
    print(
        f"store check: {store.measured_records:,} records stored for "
        f"{store.acknowledged_new:,} acknowledged as new (+{store.in_flight} in flight at the "
        f"end); {store.total_records:,} records and {store.raw_events:,} raw events in all, "
        f"{store.dead_letters} dead letters"
    )
    if profile is not None:
        print(
            f"profile of the daemon's measured run: {profile.output} "
            "(its figures include py-spy's overhead)"
        )

    results = {
        "benchmark": "ingest",
        "started_at": stamp.isoformat(),
        "settings": {
            **asdict(load),
            "requests_generated": args.requests,
            "profiled": profile is not None,
            "sink": not args.no_sink,
        },
        "environment": environment(),
        "daemon": _result_json(daemon.measured),
        "daemon_warmup": _result_json(daemon.warmup),
        "bare": _result_json(bare.measured),
        "bare_warmup": _result_json(bare.warmup),
        "postgres": {
            run.measured.target: {
                "measured": _result_json(run.measured),
                "warmup": _result_json(run.warmup),
                "store_check": asdict(check),
            }
            for run, check in postgres
        },
        "ratio": round(ratio, 3),
        "cpu_us_budget": {name: round(us, 1) for name, us in components.items()},
        "target_ratio": TARGET_RATIO,
        "store_check": asdict(store),
        "problems": problems,
        "daemon_log_tail": daemon.log_tail if problems else None,
    }
    output = RESULTS_DIR / f"ingest-{stamp:%Y%m%dT%H%M%SZ}.json"
    write_results(output, results)
    print(f"results: {output.relative_to(ROOT)}")

    if problems:
        print(f"\nthe daemon's log ended with:\n{daemon.log_tail}", file=sys.stderr)
        print("\nVALIDATION FAILED:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
