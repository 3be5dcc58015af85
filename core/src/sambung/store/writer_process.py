"""The SQLite store's group commit in a process of its own, off the event loop's GIL.

With the writer as a thread, every SQLite call gave up the GIL and had to win it back from the
event loop on the other core: inside a group's commit the lookups took milliseconds of wall
time for a fraction of that in CPU, and the event loop waited as often for the writer. Here a
child process (`python -m sambung.store.writer_child`, a fresh interpreter: no SQLite
connection is ever carried across a fork) owns one write connection and runs the very same
`SqliteStore._commit_group` on groups the daemon sends it already serialised (`storable`), over
a Unix socket pair: one length-prefixed pickle per group out, one per group's results back.

Invariants, as with the thread:
- a request's future is answered only after its group's COMMIT returned in the child;
- the child dying (even by SIGKILL) fails the group in flight with `StoreUnavailable` (the
  vendor is answered 503 and retries; the raw event's dedup key makes a retry of a group that
  did commit a duplicate, not a second record) and the next group starts a new child;
- the daemon dying takes the child with it (`die_with`), and a child never outlives its socket;
- SIGTERM is the daemon's to handle (systemd signals the whole group): the child ignores it and
  ends when the daemon, having drained, closes the socket.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import socket
import struct
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import structlog

from sambung.errors import LeaseLost, StoreUnavailable

from .base import IngestRequest, IngestResult

log = structlog.get_logger(__name__)

# Each message: its length (4 bytes, network order), then its pickle.
LENGTH = struct.Struct("!I")
READY = b"ready"
# How long a new child may take to import and open the database before the store gives up.
START_TIMEOUT = 60.0


@dataclass(frozen=True)
class Failure:
    """A request's failure as the child sends it: only the two kinds a group commit returns."""

    lease_lost: bool
    message: str

    def error(self) -> Exception:
        return LeaseLost(self.message) if self.lease_lost else StoreUnavailable(self.message)


def _result(item: object) -> IngestResult | Exception:
    if isinstance(item, Failure):
        return item.error()
    if not isinstance(item, IngestResult):
        return StoreUnavailable(f"the writer process answered a {type(item).__name__}")
    return item


class WriterProcess:
    """The parent's side: starts the child, hands it groups, restarts it if it died."""

    def __init__(self, path: Path, synchronous: str) -> None:
        self._path = path
        self._synchronous = synchronous
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        # One exchange with the child at a time; a check that restarts it waits its turn.
        self._turn = asyncio.Lock()

    @staticmethod
    def supported() -> bool:
        """Whether this platform has what the child needs (Unix sockets; not Windows)."""
        return hasattr(socket, "AF_UNIX") and sys.platform != "win32"

    @property
    def turn(self) -> asyncio.Lock:
        """Held while a group is with the child: the daemon's other writes wait for it."""
        return self._turn

    @property
    def pid(self) -> int | None:
        """The child's pid while it runs."""
        return self._process.pid if self._process is not None else None

    async def start(self) -> None:
        """Start the child and wait until it has opened the database."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "sambung.store.writer_child",
                    str(theirs.fileno()),
                    str(self._path),
                    self._synchronous,
                    str(os.getpid()),
                ],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        except OSError as err:
            ours.close()
            raise StoreUnavailable(f"could not start the store's writer process: {err}") from err
        finally:
            theirs.close()
        self._reader, self._writer = await asyncio.open_connection(sock=ours)
        try:
            ready = await asyncio.wait_for(self._receive(), START_TIMEOUT)
        except (OSError, EOFError, asyncio.IncompleteReadError, TimeoutError) as err:
            code = await self._reap()
            raise StoreUnavailable(
                f"the store's writer process did not start (exit code {code})"
            ) from err
        if ready != READY:
            await self._reap()
            raise StoreUnavailable("the store's writer process answered nonsense at start")
        log.debug("store.writer_process_started", pid=self.pid)

    async def ensure_running(self) -> None:
        """Start a new child if the last one died; `StoreUnavailable` if it cannot start."""
        async with self._turn:
            await self._ensure_running()

    async def _ensure_running(self) -> None:
        if self._process is not None and self._process.poll() is None:
            return
        if self._process is not None:  # died between groups: no write was in its hands
            code = await self._reap()
            log.error("store.writer_process_died", exit_code=code, group=0)
        await self.start()

    async def commit(
        self, requests: Sequence[IngestRequest], now: datetime
    ) -> list[IngestResult | Exception]:
        """Commit one group in the child; per request its result or why it failed."""
        async with self._turn:
            return await self._commit(requests, now)

    async def _commit(
        self, requests: Sequence[IngestRequest], now: datetime
    ) -> list[IngestResult | Exception]:
        try:
            await self._ensure_running()
        except StoreUnavailable as err:
            return [err] * len(requests)
        assert self._writer is not None
        try:
            payload = pickle.dumps((now, list(requests)), pickle.HIGHEST_PROTOCOL)
            self._writer.write(LENGTH.pack(len(payload)) + payload)
            await self._writer.drain()
            results = await self._receive()
            if not isinstance(results, list) or len(results) != len(requests):
                raise ValueError("the writer process answered out of step")
        except Exception as err:  # died, or answered what cannot be read: either way, restart
            code = await self._reap()
            log.error(
                "store.writer_process_died",
                exit_code=code,
                group=len(requests),
                error=f"{type(err).__name__}: {err}",
            )
            failure = StoreUnavailable(
                f"the store's writer process ended (exit code {code}); nothing of this write"
                " is known to be committed"
            )
            failure.__cause__ = err
            return [failure] * len(requests)
        return [_result(r) for r in results]

    async def stop(self) -> None:
        """Close the socket (the child ends after the group it holds) and reap the child."""
        async with self._turn:
            await self._reap()

    async def _receive(self) -> object:
        assert self._reader is not None
        (length,) = LENGTH.unpack(await self._reader.readexactly(LENGTH.size))
        return pickle.loads(await self._reader.readexactly(length))

    async def _reap(self) -> int | None:
        writer, process = self._writer, self._process
        self._writer = self._reader = None
        self._process = None
        if writer is not None:
            writer.close()
        if process is None:
            return None
        # EOF on its socket ends the child; it ignores SIGTERM, so this is the way it stops.
        return await asyncio.to_thread(process.wait)
