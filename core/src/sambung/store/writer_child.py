"""The store's writer process itself: `python -m sambung.store.writer_child`.

The daemon's side, and why, is `writer_process.WriterProcess`; this is the loop it starts. It
owns one write connection and runs `SqliteStore._commit_group` on each group it receives.
"""

from __future__ import annotations

import pickle
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from sambung.errors import LeaseLost
from sambung.processes import die_with

from .sqlite import SqliteStore
from .writer_process import LENGTH, READY, Failure


def _read_exactly(sock: socket.socket, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _send(sock: socket.socket, item: object) -> None:
    payload = pickle.dumps(item, pickle.HIGHEST_PROTOCOL)
    sock.sendall(LENGTH.pack(len(payload)) + payload)


def serve(sock: socket.socket, path: Path, synchronous: str) -> None:
    """The child's loop: open the database, then commit every group until the socket closes."""
    store = SqliteStore(path, synchronous=synchronous)
    store._open_writer()
    _send(sock, READY)
    try:
        while (header := _read_exactly(sock, LENGTH.size)) is not None:
            (length,) = LENGTH.unpack(header)
            frame = _read_exactly(sock, length)
            if frame is None:
                break
            now, requests = pickle.loads(frame)
            results = store._commit_group(requests, now=now)
            _send(
                sock,
                [
                    Failure(isinstance(r, LeaseLost), str(r)) if isinstance(r, Exception) else r
                    for r in results
                ],
            )
    except (BrokenPipeError, ConnectionResetError):
        pass  # the daemon is gone: what it did not see answered it never acknowledged
    finally:
        store._close_writer()


def main(argv: Sequence[str]) -> int:
    """`python -m sambung.store.writer_child FD PATH SYNCHRONOUS PARENT_PID`."""
    fd, path, synchronous, parent = argv
    die_with(int(parent))
    # The daemon handles SIGTERM and SIGINT (systemd and a terminal signal the whole group):
    # this process ends when the daemon, having drained, closes the socket.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve(socket.socket(fileno=int(fd)), Path(path), synchronous)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
