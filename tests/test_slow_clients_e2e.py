"""Slow senders on real sockets: a client dribbling its headers or its body one byte at a time
is cut off by both listeners within their configured timeouts, and the daemon keeps answering
everyone else meanwhile. Malformed HTTP from a stranger is one quiet log line, no traceback."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sambung.testing.daemon import DaemonProcess, HttpClient, free_port

ADMIN_TOKEN = "admin-token-for-slow-clients"
TIMEOUT = 1.0  # seconds, for headers and for bodies, on both listeners
DRIP = 0.1  # seconds between two bytes of a slow sender
WEBHOOK = "/api/v1/integrations/webhooks/pawoon"


def config(admin_port: int) -> dict[str, Any]:
    limits = {"header_timeout": f"{TIMEOUT:g}s", "body_timeout": f"{TIMEOUT:g}s"}
    return {
        "server": {
            "public": limits,
            "admin": {"host": "127.0.0.1", "port": admin_port, "token": ADMIN_TOKEN, **limits},
        },
        "outlets": [
            {
                "id": "kemang",
                "name": "Kemang",
                "connectors": {"pawoon": {"mode": "webhook", "webhook_secret": "slow-secret"}},
            }
        ],
    }


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    admin_port = free_port()
    process = DaemonProcess(tmp_path_factory.mktemp("slow"), config(admin_port))
    process.admin_port = admin_port  # type: ignore[attr-defined]
    process.start()
    yield process
    process.terminate()


def dribble(port: int, head: bytes, tail: bytes) -> tuple[float, bytes]:
    """Send `head` at once, then `tail` one byte every DRIP seconds until the server closes
    the connection; returns how long after the last full part it took, and what it answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        started = time.monotonic()
        answer = b""
        for byte in tail:
            sock.settimeout(DRIP)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                chunk = None
            except ConnectionResetError:
                return time.monotonic() - started, answer
            if chunk == b"":
                return time.monotonic() - started, answer
            if chunk:
                answer += chunk
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - started, answer
        raise AssertionError(f"still open after {time.monotonic() - started:.1f}s: {answer!r}")


@contextmanager
def meanwhile(check: Callable[[], None]) -> Iterator[list[BaseException]]:
    """Run `check` repeatedly in a thread while the block runs; failures are collected."""
    failures: list[BaseException] = []
    done = threading.Event()

    def run() -> None:
        while not done.is_set():
            try:
                check()
            except BaseException as err:  # reported by the test
                failures.append(err)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield failures
    finally:
        done.set()
        thread.join(10)


def healthy(daemon: DaemonProcess) -> Callable[[], None]:
    def check() -> None:
        status, body = daemon.get("/healthz")
        assert status == 200, body
        admin = HttpClient(f"http://127.0.0.1:{daemon.admin_port}")  # type: ignore[attr-defined]
        status, body = admin.get("/readyz", {"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert status == 200, body

    return check


def request_head(path: str, length: int, extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n{extra}\r\n"
    ).encode()


def ports(daemon: DaemonProcess) -> dict[str, int]:
    return {"public": daemon.port, "admin": daemon.admin_port}  # type: ignore[attr-defined]


@pytest.mark.parametrize("listener", ["public", "admin"])
def test_headers_sent_a_byte_at_a_time_are_cut_off(daemon: DaemonProcess, listener: str) -> None:
    path = WEBHOOK if listener == "public" else "/api/v1/dead-letters/replay"
    # Headers that never end: each byte arrives in time for the last, none ends the request.
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ".encode() + b"a" * 1000
    with meanwhile(healthy(daemon)) as failures:
        took, _answer = dribble(ports(daemon)[listener], b"", head)
    assert took < 3 * TIMEOUT, took
    assert not failures, failures


@pytest.mark.parametrize("listener", ["public", "admin"])
def test_a_body_sent_a_byte_at_a_time_is_cut_off_with_408(
    daemon: DaemonProcess, listener: str
) -> None:
    body = json.dumps({"event_type": "transaction.created", "data": {}}).encode() * 100
    if listener == "public":
        head = request_head(WEBHOOK, len(body), "X-Webhook-Signature: 00\r\n")
    else:
        head = request_head(
            "/api/v1/dead-letters/replay", len(body), f"Authorization: Bearer {ADMIN_TOKEN}\r\n"
        )
    with meanwhile(healthy(daemon)) as failures:
        took, answer = dribble(ports(daemon)[listener], head, body)
    assert took < 3 * TIMEOUT, took
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert not failures, failures


def test_a_slow_upload_is_cut_off_too(daemon: DaemonProcess) -> None:
    boundary = "slowboundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n" + "Date;Total\n" * 400 + f"\r\n--{boundary}--\r\n"
    ).encode()
    head = (
        "POST /api/v1/integrations/upload-csv HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {ADMIN_TOKEN}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    took, answer = dribble(ports(daemon)["admin"], head, body)
    assert took < 3 * TIMEOUT, took
    assert answer.startswith(b"HTTP/1.1 408"), answer


@pytest.mark.parametrize(
    "garbage",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\x01: y\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
        b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
    ids=["bad-header", "bad-length", "long-line", "tls-after-request", "bad-chunk"],
)
@pytest.mark.parametrize("listener", ["public", "admin"])
def test_malformed_http_is_a_quiet_line_without_a_traceback(
    daemon: DaemonProcess, listener: str, garbage: bytes
) -> None:
    before = len(daemon.logs())
    with socket.create_connection(("127.0.0.1", ports(daemon)[listener]), timeout=5) as sock:
        sock.sendall(garbage)
        answer = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            answer += chunk
    assert re.match(rb"HTTP/1\.[01] 4\d\d ", answer), answer
    healthy(daemon)()
    time.sleep(0.2)  # the daemon logs after answering
    logged = daemon.logs()[before:]
    lines = [json.loads(line) for line in logged.splitlines() if line.startswith("{")]
    loud = [e for e in lines if e.get("level") in ("error", "critical") or "exception" in e]
    assert not loud, loud
    assert "Traceback" not in logged, logged
