"""Building blocks for fake vendor APIs: a local aiohttp app that keeps rows, issues tokens,
logs every request, and injects the faults real vendors produce.

A plugin's `fake.py` subclasses `FakeVendor`, adds its routes in `routes()`, and shapes its rows
as the vendor does; tests then tell it what to break::

    vendor = QasirFake(api_key="k")
    async with vendor.serve() as base_url:
        vendor.faults.fail(429, headers={"Retry-After": "7"})
        vendor.faults.fail(500, times=2)
        vendor.faults.slow(5.0)              # longer than the client's timeout
        vendor.expire_tokens()               # every token issued so far now gets 401
        vendor.upsert("TX-1", changed_at, {...})   # a new row, or a row updated later

Faults apply to the next matching requests in the order they were added; token endpoints are
spared unless a fault names their path.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from sambung.clock import Clock, SystemClock, monotonic

from .secret_scan import remember

Handler = Callable[[web.Request], Any]


@dataclass
class Fault:
    """One kind of failure for the next `times` requests whose path contains `path`."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: str = '{"message": "injected fault"}'
    delay: float = 0.0
    times: int = 1
    path: str | None = None


class Faults:
    """The faults still to inject, in order."""

    def __init__(self) -> None:
        self.pending: list[Fault] = []
        self.injected = 0

    def fail(
        self,
        status: int,
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
        body: str | None = None,
        path: str | None = None,
    ) -> None:
        """Answer the next `times` requests with `status` (and these headers)."""
        fault = Fault(status=status, headers=headers or {}, times=times, path=path)
        if body is not None:
            fault.body = body
        self.pending.append(fault)

    def slow(self, seconds: float, *, times: int = 1, path: str | None = None) -> None:
        """Hold the next `times` requests for `seconds` before answering them normally."""
        self.pending.append(Fault(delay=seconds, times=times, path=path))

    def take(self, path: str, *, spare: bool) -> Fault | None:
        """The fault for a request to `path`, if one is due."""
        for fault in self.pending:
            if (fault.path is None and not spare) or (fault.path and fault.path in path):
                fault.times -= 1
                if fault.times <= 0:
                    self.pending.remove(fault)
                self.injected += 1
                return fault
        return None


@dataclass(frozen=True)
class Seen:
    """One request the fake received."""

    at: float
    method: str
    path: str
    query: dict[str, str]
    status: int


@dataclass
class Row:
    """One record at the vendor: its id, when it last changed, and its JSON fields."""

    id: str
    changed_at: datetime
    data: dict[str, Any]
    # The order rows were written in; breaks ties between rows changed in the same second.
    sequence: int = 0


class FakeVendor:
    """A vendor API as a local aiohttp app: rows, tokens, a request log and injected faults."""

    # Paths that issue tokens: untouched by path-less faults, so a fault hits a data call.
    token_paths: tuple[str, ...] = ()

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        monotonic_clock: Callable[[], float] = monotonic,
        page_size: int = 50,
        token_ttl: timedelta = timedelta(hours=1),
    ) -> None:
        self.clock = clock or SystemClock()
        self.monotonic = monotonic_clock
        self.page_size = page_size
        self.token_ttl = token_ttl
        self.faults = Faults()
        self.requests: list[Seen] = []
        self.rows: dict[str, Row] = {}
        self.tokens: dict[str, datetime] = {}
        self.refresh_tokens: set[str] = set()
        self.tokens_issued = 0
        # Every bearer token a data request carried, in order.
        self.bearers: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        # Per poll loop (see `loop_of`): requests in flight now, and the most there ever were.
        # More than one means two pollers of the same connection overlapped.
        self.in_flight_by_loop: dict[str, int] = {}
        self.max_in_flight_by_loop: dict[str, int] = {}
        # Added to every request, so two pollers of one loop would overlap and be counted.
        self.latency = 0.0
        self._sequence = 0
        self.url = ""
        # Called after each answered request: a test changes rows between two pages with it.
        self.after_request: Callable[[Seen], None] | None = None

    # -- rows ------------------------------------------------------------------------------

    def upsert(self, id: str, changed_at: datetime, data: dict[str, Any]) -> Row:
        """Add a row, or change one (it moves to the end of the change order)."""
        self._sequence += 1
        row = Row(id, changed_at, data, self._sequence)
        self.rows[id] = row
        return row

    def changed_between(self, since: datetime | None, until: datetime | None) -> list[Row]:
        """Rows changed in [since, until], oldest change first (ties in write order)."""
        return sorted(
            (
                row
                for row in self.rows.values()
                if (since is None or row.changed_at >= since)
                and (until is None or row.changed_at <= until)
            ),
            key=lambda row: (row.changed_at, row.sequence),
        )

    # -- tokens ----------------------------------------------------------------------------

    def issue_token(self) -> dict[str, Any]:
        """A new access token (and refresh token), as most token endpoints answer."""
        access, refresh = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        self.tokens[access] = self.clock.now() + self.token_ttl
        self.refresh_tokens.add(refresh)
        self.tokens_issued += 1
        remember(access, refresh)
        return {
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "Bearer",
            "expires_in": int(self.token_ttl.total_seconds()),
        }

    def expire_tokens(self) -> None:
        """Every access token issued so far stops working (as if it expired early)."""
        self.tokens.clear()

    def bearer_ok(self, request: web.Request) -> bool:
        """Whether the request carries a live token issued by this fake."""
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip()
        self.bearers.append(token)
        expiry = self.tokens.get(token)
        return expiry is not None and self.clock.now() < expiry

    @staticmethod
    def unauthorized(message: str = "invalid or expired token") -> web.Response:
        """The 401 a vendor answers."""
        return web.json_response({"message": message}, status=401)

    # -- the app ---------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        """Add the vendor's endpoints (a subclass does)."""

    def app(self) -> web.Application:
        """The aiohttp app: fault injection and the request log around the vendor's routes."""
        app = web.Application(middlewares=[self._middleware])
        self.routes(app)
        return app

    def loop_of(self, request: web.Request) -> str:
        """Which poll loop sent a request: its credentials, since each connection has its own
        (a subclass whose connections share credentials names the outlet some other way)."""
        return request.headers.get("Authorization", "")

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        loop = self.loop_of(request)
        now_in_flight = self.in_flight_by_loop.get(loop, 0) + 1
        self.in_flight_by_loop[loop] = now_in_flight
        self.max_in_flight_by_loop[loop] = max(
            self.max_in_flight_by_loop.get(loop, 0), now_in_flight
        )
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            spare = any(request.path.endswith(p) for p in self.token_paths)
            fault = self.faults.take(request.path, spare=spare)
            if fault is not None and fault.delay:
                await asyncio.sleep(fault.delay)
            if fault is not None and fault.status is not None:
                response: web.StreamResponse = web.Response(
                    status=fault.status,
                    text=fault.body,
                    headers=fault.headers,
                    content_type="application/json",
                )
            else:
                response = await handler(request)
        finally:
            self.in_flight -= 1
            self.in_flight_by_loop[loop] -= 1
        seen = Seen(
            self.monotonic(), request.method, request.path, dict(request.query), response.status
        )
        self.requests.append(seen)
        if self.after_request is not None:
            self.after_request(seen)
        return response

    def data_requests(self) -> list[Seen]:
        """The requests that were not for tokens."""
        return [r for r in self.requests if not any(r.path.endswith(p) for p in self.token_paths)]

    @asynccontextmanager
    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
        """Serve on a free local port; yields the base URL."""
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1]
        self.url = f"http://{host}:{bound}"
        try:
            yield self.url
        finally:
            await runner.cleanup()


class FakeClock:
    """A clock tests move by hand; `sleep` jumps ahead instead of waiting."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._mono = 1000.0
        self.slept: list[float] = []

    def now(self) -> datetime:
        """The current fake instant."""
        return self._now

    def monotonic(self) -> float:
        """The fake monotonic clock, which moves with `now`."""
        return self._mono

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self._now += timedelta(seconds=seconds)
        self._mono += seconds

    async def sleep(self, seconds: float) -> None:
        """Record the wait, jump ahead by it, and let other tasks run."""
        self.slept.append(seconds)
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)
