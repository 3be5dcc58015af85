"""Where an import's batches are mapped: a worker thread, or a forked worker process.

A small file is mapped in a thread, one batch at a time. A large one is mapped in a forked
process that runs a batch ahead while the importing process commits, so the two use both cores;
the worker commits nothing, and dies with the importer.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import pickle
import signal
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Protocol

import structlog

try:
    import fcntl
except ImportError:  # Windows: no fcntl, and no fork either
    fcntl = None  # type: ignore[assignment]

from sambung.connectors import FileDropConnector, FileDropSettings
from sambung.processes import die_with

from .csvbatches import Batch, FileShape, Unmapped, finished, map_here, mapped_batches, open_regular

log = structlog.get_logger(__name__)

# From this size on a file is mapped in a worker process: forking costs a few milliseconds.
WORKER_FROM_BYTES = 1 << 20
CAN_FORK = "fork" in multiprocessing.get_all_start_methods()


class MappedBatches(Protocol):
    """Where an import's batches come from: this process, or a worker process."""

    async def next(self) -> FileShape | Batch | None:
        """The next item of `mapped_batches`, or None after the last."""

    async def close(self) -> None:
        """Release the file (and the worker)."""

    def idle(self, seconds: float) -> None:
        """Note that the importer sat idle this long, its last batch stored, for this one."""


class MappedInThread:
    """Maps in a worker thread, one batch at a time: for small files, where a process costs
    more to start than it saves."""

    def __init__(
        self,
        connector: FileDropConnector[FileDropSettings],
        path: Path,
        encoding: str | None,
        size: int,
    ) -> None:
        self._handle = open_regular(path)
        self._items = mapped_batches(connector, self._handle, encoding, size)

    async def next(self) -> FileShape | Batch | None:
        """The next shape or batch, mapped in a thread."""
        return await asyncio.to_thread(lambda: finished(next(self._items, None)))

    async def close(self) -> None:
        """Close the file."""
        self._handle.close()

    def idle(self, seconds: float) -> None:
        """Nothing to balance: the thread maps only when asked."""


@dataclass(frozen=True)
class _Failed:
    """An exception raised while mapping in the worker process, sent to be raised here."""

    error: BaseException


class MappedInProcess:
    """Maps in a forked worker process while this one writes: the two use both cores.

    Mapping and serialising a row costs about as much CPU as storing it, and both need the GIL,
    so threads could only take turns. The worker reads, maps, serialises and fingerprints; it
    sends each batch through a pipe (columns of plain values and row errors, in file order, see
    `Batch`) and maps the next one meanwhile; this process commits (and maps the odd batch the
    worker hands over when this one sits idle, see `_HandOff`). A send waits until this process
    takes the batch, so the worker runs at most a batch ahead and memory stays flat. Nothing is
    committed by the worker: if either process dies, the file stays in the inbox and the next
    import upserts the same rows.
    """

    def __init__(
        self,
        connector: FileDropConnector[FileDropSettings],
        path: Path,
        encoding: str | None,
        size: int,
    ) -> None:
        # fork: the worker inherits the connector (its plugin, settings and parser) as it is.
        context = multiprocessing.get_context("fork")
        self._receive, send = context.Pipe(duplex=False)
        _widen(send)
        self._importer_idle = context.Event()
        self._process = context.Process(
            target=_map_in_worker,
            args=(
                send,
                self._receive,
                _HandOff(self._importer_idle),
                connector,
                path,
                encoding,
                size,
                os.getpid(),
            ),
            name="sambung-csv-mapper",
            daemon=True,
        )
        self._process.start()
        send.close()
        self._connector = connector
        self._shape: FileShape | None = None
        self._receiving: asyncio.Future[FileShape | Batch | _Failed | None] | None = None

    async def next(self) -> FileShape | Batch | None:
        """The next shape or batch the worker mapped."""
        self._receiving = asyncio.ensure_future(asyncio.to_thread(self._receive_one))
        item = await asyncio.shield(self._receiving)
        if isinstance(item, _Failed):
            raise item.error
        return item

    def _receive_one(self) -> FileShape | Batch | _Failed | None:
        try:
            item: FileShape | Batch | Unmapped | _Failed | None = self._receive.recv()
        except EOFError:
            self._process.join()
            raise RuntimeError(
                f"the CSV mapping process ended unexpectedly (exit code {self._process.exitcode})"
            ) from None
        if isinstance(item, FileShape):
            self._shape = item
        if isinstance(item, Unmapped):
            assert self._shape is not None  # the shape always comes first
            return map_here(self._connector, self._shape, item)
        return item if isinstance(item, _Failed) else finished(item)

    def idle(self, seconds: float) -> None:
        """Ask the worker for an unmapped batch when this process waited long for this one."""
        if seconds >= IDLE_SECONDS:
            self._importer_idle.set()

    async def close(self) -> None:
        """Stop the worker if it is still running and reap it."""
        if self._process.is_alive():
            self._process.kill()
        await asyncio.to_thread(self._process.join)
        # A receive still running (the import was cancelled) ends at the pipe's EOF now; only
        # then is the pipe closed, so its descriptor cannot be reused under that read.
        if self._receiving is not None:
            await asyncio.gather(self._receiving, return_exceptions=True)
        self._receive.close()


# The pipe's buffer: Linux's default 64 KiB took a batch (~2.5 MB) in forty writes and as many
# wake-ups of the reader; 1 MiB, the most an unprivileged process may ask for by default
# (/proc/sys/fs/pipe-max-size), made imports 1.17x as fast (ABBA-paired, 1M rows).
PIPE_BYTES = 1 << 20


def _widen(pipe: Connection) -> None:
    """Give the pipe `PIPE_BYTES` of buffer where the system allows (Linux); else keep it."""
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None) if fcntl is not None else None
    if set_size is None:
        return
    try:
        fcntl.fcntl(pipe.fileno(), set_size, PIPE_BYTES)
    except OSError as err:  # a lower pipe-max-size: the default buffer still works
        log.debug("csv.pipe_not_widened", error=str(err))


def _map_in_worker(
    send: Connection,
    receive: Connection,
    hand_off: _HandOff,
    connector: FileDropConnector[FileDropSettings],
    path: Path,
    encoding: str | None,
    size: int,
    parent: int,
) -> None:
    """The worker process: map the file and send every item, then None (or the failure)."""
    # The fork copied the importer's reading end too: with it open here, the pipe would keep a
    # reader after the importer died, and a send would wait forever instead of failing.
    receive.close()
    die_with(parent)
    # Signals are the importing process's business: it stops the worker when it stops. The
    # inherited wakeup fd would otherwise tell the parent's event loop about our signals.
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    except ValueError:  # not the main thread: nothing was inherited to undo
        pass
    try:
        with open_regular(path) as handle:
            for item in mapped_batches(connector, handle, encoding, size, hand_off=hand_off.now):
                send.send(item)
                hand_off.sent(item)
        send.send(None)
    except (BrokenPipeError, ConnectionResetError):
        return  # the importer is gone; it commits nothing more, so neither do we
    except BaseException as err:  # raised again in the importer, as it would be in-process
        try:
            pickle.dumps(err)
        except Exception:
            err = RuntimeError(f"{type(err).__name__}: {err}")
        try:
            send.send(_Failed(err))
        except OSError:
            return
    finally:
        send.close()


# The importer asks for a batch to map when it waited this long for the last one, its commit
# done: it had nothing else to do.
IDLE_SECONDS = 0.02
# At most one batch in this many is handed to the importer to map.
HAND_OFF_EVERY = 6


class _HandOff:
    """Balances the two processes: the worker leaves the next batch unmapped for the importer
    when the importer says it sat idle, waiting for a mapped batch after its last commit.

    Which process is the slower depends on the connector and the store: a file whose rows are
    costly to map keeps the importer waiting, a slow disk or a PostgreSQL round trip keeps the
    worker waiting. Only the importer knows when it is idle (a fast send only shows that its
    receiving thread was ready, not that it had nothing to commit), so it says so through an
    event. Handing off at most one batch in `HAND_OFF_EVERY` keeps the importer, which also
    commits, from becoming the slower one.
    """

    def __init__(self, importer_idle: EventType) -> None:
        self._importer_idle = importer_idle
        self._mapped = 0  # batches mapped here since the last one handed off

    def now(self) -> bool:
        """Whether to leave the next batch unmapped."""
        return self._mapped >= HAND_OFF_EVERY - 1 and self._importer_idle.is_set()

    def sent(self, item: object) -> None:
        """Note what was sent."""
        if isinstance(item, Unmapped):
            self._mapped = 0
            self._importer_idle.clear()
        elif isinstance(item, Batch):
            self._mapped += 1
