"""Logging to a file that log rotation can move away: reopened by name on SIGHUP.

logrotate (see `deploy/logrotate/sambung`) renames `sambung.log` and sends SIGHUP; the daemon
then opens a new file under the old name, so nothing is lost and nothing is copied.
"""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path
from typing import TextIO, cast


class LogFile(io.TextIOBase):
    """A text stream appending to `path`, which `reopen()` swaps for the file now at `path`."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._lock = threading.Lock()  # log lines come from threads too (the store's writer)
        self._file = self._open()

    def _open(self) -> TextIO:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # 0640: logs carry no secrets but do carry business data; not for every local user.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        return os.fdopen(fd, "a", encoding="utf-8", buffering=1)

    def write(self, text: str) -> int:
        """Append `text` (line-buffered)."""
        with self._lock:
            return self._file.write(text)

    def flush(self) -> None:
        """Flush what is buffered."""
        with self._lock:
            self._file.flush()

    def isatty(self) -> bool:
        """Never a terminal: logs to a file are JSON lines (with `format: auto`)."""
        return False

    def reopen(self) -> None:
        """Close the current file and open the one now at `path` (created if it was moved)."""
        with self._lock:
            old, self._file = self._file, self._open()
        old.close()

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._file.close()
        super().close()


# The file the process logs to, if any: SIGHUP reopens it.
current: LogFile | None = None


def open_log_file(path: Path) -> TextIO:
    """Open `path` as the process's log file: a stream for `logs.configure`."""
    global current
    current = LogFile(path)
    # A TextIOBase is what structlog and logging write to; typing's TextIO is a separate,
    # nominal protocol that no io class declares.
    return cast(TextIO, current)


def reopen() -> None:
    """SIGHUP: reopen the log file, if logging goes to one."""
    if current is not None:
        current.reopen()
