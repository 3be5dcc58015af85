"""Telling systemd how the daemon is doing (`sd_notify`), without a library.

Under `Type=notify` systemd passes a unix datagram socket in `NOTIFY_SOCKET` (a path, or an
abstract name written with a leading `@`); each datagram is newline-separated `KEY=value`
lines: `READY=1` once listening, `STOPPING=1` when draining, `STATUS=` for `systemctl status`,
`WATCHDOG=1` to show the event loop still turns. Without `NOTIFY_SOCKET` every call does nothing.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Mapping

import structlog

log = structlog.get_logger(__name__)


class Notifier:
    """Sends `sd_notify` datagrams to the socket systemd named, if it named one."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        address = environ.get("NOTIFY_SOCKET", "")
        # An abstract socket is named with "@" in the variable and a NUL byte on the wire.
        self.address = "\0" + address[1:] if address.startswith("@") else address
        self.watchdog_seconds: float | None = None
        usec = environ.get("WATCHDOG_USEC", "")
        pid = environ.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_seconds = int(usec) / 1_000_000
        self._failed = False

    @property
    def enabled(self) -> bool:
        """Whether systemd is listening."""
        return bool(self.address)

    def notify(self, **fields: str) -> bool:
        """Send one datagram of `KEY=value` lines; False if it could not be sent."""
        if not self.address:
            return False
        message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(self.address)
                sock.sendall(message)
        except OSError as err:
            if not self._failed:  # once, not every watchdog ping
                log.warning("systemd.notify_failed", socket=self.address, error=str(err))
            self._failed = True
            return False
        self._failed = False
        return True

    def ready(self, status: str) -> bool:
        """The listeners and loops are up."""
        return self.notify(READY="1", STATUS=status)

    def stopping(self, status: str = "draining") -> bool:
        """Shutdown began."""
        return self.notify(STOPPING="1", STATUS=status)

    async def watchdog(self) -> None:
        """Ping twice per `WatchdogSec` for as long as the event loop runs (cancel to stop)."""
        if self.watchdog_seconds is None or not self.address:
            return
        while True:
            self.notify(WATCHDOG="1")
            await asyncio.sleep(self.watchdog_seconds / 2)
