"""sd_notify over a real unix datagram socket: a path, an abstract name, none at all."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from sambung.runtime.systemd import Notifier


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket bound to a path, as systemd's NOTIFY_SOCKET is."""
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(5)
        yield sock, str(path)


def received(sock: socket.socket) -> dict[str, str]:
    lines = sock.recv(4096).decode().splitlines()
    return dict(line.split("=", 1) for line in lines)


def test_ready_and_stopping_reach_the_socket(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = Notifier({"NOTIFY_SOCKET": path})

    assert notifier.ready("listening on 127.0.0.1:8080")
    assert received(sock) == {"READY": "1", "STATUS": "listening on 127.0.0.1:8080"}
    assert notifier.stopping()
    assert received(sock) == {"STOPPING": "1", "STATUS": "draining"}


def test_an_abstract_socket_is_named_with_an_at_sign() -> None:
    name = f"sambung-test-{secrets.token_hex(6)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).notify(STATUS="hello")
        assert received(sock) == {"STATUS": "hello"}


def test_without_notify_socket_nothing_is_sent() -> None:
    notifier = Notifier({})
    assert not notifier.enabled and not notifier.ready("up") and notifier.watchdog_seconds is None


def test_a_missing_socket_is_reported_not_raised(tmp_path: Path) -> None:
    assert not Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")}).ready("up")


async def test_the_watchdog_pings_twice_per_interval(
    listener: tuple[socket.socket, str],
) -> None:
    sock, path = listener
    environ = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid())}
    notifier = Notifier(environ)
    assert notifier.watchdog_seconds == 0.2
    task = asyncio.create_task(notifier.watchdog())
    try:
        pings = [await asyncio.to_thread(received, sock) for _ in range(3)]
    finally:
        task.cancel()
    assert pings == [{"WATCHDOG": "1"}] * 3


def test_a_watchdog_meant_for_another_process_is_ignored(tmp_path: Path) -> None:
    environ = {"NOTIFY_SOCKET": str(tmp_path / "n"), "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"}
    assert Notifier(environ).watchdog_seconds is None
