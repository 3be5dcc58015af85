"""A receiver for the `http` sink: a small aiohttp app that verifies Standard Webhooks signatures.

Tests script its answers (`answer_with(503, times=3)`) and read what arrived; the demo (`sambung
run --simulate`) and `bench/outbox` run it too. `python -m sambung.testing.receiver` runs it on
its own, for the benchmark and by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from aiohttp import web

from sambung.clock import SystemClock

# Receivers must refuse timestamps further than this from their own clock (the spec's advice).
TOLERANCE_SECONDS = 5 * 60

Verifier = Callable[[bytes, Mapping[str, str]], None]


def wall_seconds() -> float:
    """Unix seconds by the receiver's own clock, as a real receiver checks a timestamp."""
    return SystemClock().now().timestamp()


class VerificationError(Exception):
    """A delivery whose signature, id or timestamp does not check out."""


def verify_standard_webhook(
    secret: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    now: float | None = None,
    tolerance: float = TOLERANCE_SECONDS,
) -> None:
    """Raise `VerificationError` unless `headers` sign `body` with `secret` (`whsec_…`)."""
    msg_id = headers.get("webhook-id")
    stamp = headers.get("webhook-timestamp")
    given = headers.get("webhook-signature")
    if not (msg_id and stamp and given):
        raise VerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise VerificationError("webhook-timestamp is not an integer") from None
    if tolerance and abs((wall_seconds() if now is None else now) - timestamp) > tolerance:
        raise VerificationError("webhook-timestamp is too far from now")
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    expected = base64.b64encode(digest).decode()
    for part in given.split():
        version, _, signature = part.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return
    raise VerificationError("no matching v1 signature")


@dataclass(frozen=True)
class Received:
    """One request that reached the receiver, verified or not."""

    webhook_id: str
    body: bytes
    headers: dict[str, str]
    verified: bool
    status: int

    @property
    def payload(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)


@dataclass(frozen=True)
class Answer:
    """A scripted answer."""

    status: int
    body: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0


class Receiver:
    """The receiving end of an `http` sink; verifies every request and records it."""

    def __init__(self, secret: str, *, verify: Verifier | None = None, record: bool = True) -> None:
        self.secret = secret
        # What "now" is for the timestamp check: a test with a moved clock replaces it.
        self.now: Callable[[], float] = wall_seconds
        self.verify: Verifier = verify or (
            lambda body, headers: verify_standard_webhook(secret, body, headers, now=self.now())
        )
        self.record = record
        # Called with every verified request (the demo logs them).
        self.on_receive: Callable[[Received], None] | None = None
        self.requests: list[Received] = []
        self.acknowledged: dict[str, int] = {}  # webhook-id → times answered 2xx
        # webhook-id → requests with it being handled right now, and the most there ever were
        # at once: a sender must never have one id in flight twice.
        self._in_flight: dict[str, int] = {}
        self.max_in_flight: dict[str, int] = {}
        self.count = 0
        self.rejected = 0
        self._script: deque[Answer] = deque()
        self.default = Answer(204)
        self._lock = threading.Lock()
        self._runner: web.AppRunner | None = None
        self.url = ""

    def answer_with(
        self,
        status: int,
        *,
        times: int = 1,
        body: str = "",
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer the next `times` verified requests with `status` (then the default again)."""
        with self._lock:
            self._script.extend([Answer(status, body, dict(headers or {}), delay)] * times)

    def app(self) -> web.Application:
        """The aiohttp app: `POST /webhooks` receives, `GET /stats` counts."""
        app = web.Application()
        app.router.add_post("/webhooks", self._receive)
        app.router.add_get("/stats", self._stats)
        return app

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        webhook_id = headers.get("webhook-id", "")
        try:
            self.verify(body, headers)
        except Exception as err:
            with self._lock:
                self.rejected += 1
                if self.record:
                    self.requests.append(Received(webhook_id, body, headers, False, 401))
            return web.Response(status=401, text=f"signature rejected: {err}")
        with self._lock:
            answer = self._script.popleft() if self._script else self.default
            now_in_flight = self._in_flight.get(webhook_id, 0) + 1
            self._in_flight[webhook_id] = now_in_flight
            self.max_in_flight[webhook_id] = max(
                now_in_flight, self.max_in_flight.get(webhook_id, 0)
            )
        try:
            if answer.delay:
                await asyncio.sleep(answer.delay)
        finally:
            with self._lock:
                self._in_flight[webhook_id] -= 1
        received = Received(webhook_id, body, headers, True, answer.status)
        with self._lock:
            self.count += 1
            if self.record:
                self.requests.append(received)
            if 200 <= answer.status < 300:
                self.acknowledged[webhook_id] = self.acknowledged.get(webhook_id, 0) + 1
        if self.on_receive is not None:
            self.on_receive(received)
        return web.Response(status=answer.status, text=answer.body, headers=answer.headers)

    async def _stats(self, _request: web.Request) -> web.Response:
        with self._lock:
            stats = {
                "requests": self.count,
                "rejected": self.rejected,
                "acknowledged": len(self.acknowledged),
                "pid": os.getpid(),
            }
        return web.json_response(stats)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on the running loop; returns the URL to put in the sink's settings."""
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        await site.start()
        bound = self._runner.addresses[0][1]
        self.url = f"http://{host}:{bound}/webhooks"
        return self.url

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def in_flight_twice(self) -> dict[str, int]:
        """webhook-id → most requests at once, for every id that was in flight more than once."""
        with self._lock:
            return {key: count for key, count in self.max_in_flight.items() if count > 1}

    def seen_ids(self) -> set[str]:
        """Every webhook-id that was acknowledged at least once."""
        with self._lock:
            return set(self.acknowledged)


class Served(Protocol):
    """A fake server a test runs: started on the running loop, stopped at the end."""

    async def start(self, host: str = ..., port: int = ...) -> str:
        """Serve; returns its URL."""
        ...

    async def stop(self) -> None:
        """Stop serving."""
        ...


S = TypeVar("S", bound=Served)


class ReceiverThread(Generic[S]):
    """A `Receiver` (or another fake server, such as `FakeTelegram`) on its own event loop in a
    thread, for tests that block (real daemons)."""

    def __init__(self, receiver: S, port: int = 0) -> None:
        self.receiver = receiver
        self.port = port
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> S:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.receiver.start(port=self.port), self.loop).result(10)
        return self.receiver

    def __exit__(self, *_exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.receiver.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


def main() -> None:
    """Run a receiver until interrupted (`python -m sambung.testing.receiver`)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9090)
    parser.add_argument("--secret", required=True)
    parser.add_argument(
        "--reuse-port", action="store_true", help="share the port with other receivers"
    )
    args = parser.parse_args()
    receiver = Receiver(args.secret, record=False)
    web.run_app(
        receiver.app(),
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
        reuse_port=args.reuse_port or None,
    )


if __name__ == "__main__":
    main()
