"""The admin listener: what an operator (or a monitoring system) asks the daemon.

Bound to 127.0.0.1 by default and guarded by a bearer token from the YAML, compared in constant
time. Endpoints that belong to one subsystem are mounted here by that subsystem's module.
"""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sambung import metrics
from sambung.alerts.report import add_alert_routes, status_parts
from sambung.auth.connect import add_connect_route
from sambung.auth.credentials import CredentialService
from sambung.console.app import add_console, is_console_path
from sambung.delivery.attempts import DeliveryAttempts, add_delivery_routes
from sambung.delivery.dlq import DeadLetters, add_dead_letter_routes
from sambung.delivery.outbox import Dispatcher
from sambung.delivery.reconciliation import ReconciliationService, add_reconciliation_routes
from sambung.errors import StoreUnavailable
from sambung.intake.backfill import BackfillService, add_backfill_routes, backfill_status
from sambung.intake.controls import ControlService, add_control_routes
from sambung.intake.cursors import CursorService, add_cursor_routes
from sambung.intake.upload import UploadHost, add_upload_route
from sambung.redaction import secrets
from sambung.store import Store

from .replicas import Replica
from .status import connection_status, lease_status, loop_status, sink_status
from .supervision import Loops


class AdminHost(UploadHost, Protocol):
    """What the admin endpoints read of the running daemon (at each request: a reload
    replaces `loaded`); the upload route's part, and the rest."""

    @property
    def store(self) -> Store: ...
    @property
    def loops(self) -> Loops: ...
    @property
    def dispatcher(self) -> Dispatcher: ...
    @property
    def replica(self) -> Replica: ...
    @property
    def credentials(self) -> CredentialService: ...
    @property
    def backfills(self) -> BackfillService: ...
    @property
    def cursors(self) -> CursorService: ...
    @property
    def controls(self) -> ControlService: ...


DAEMON_KEY: web.AppKey[AdminHost] = web.AppKey("daemon")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def bearer_guard(token: str, exempt: Callable[[str], bool] = lambda _: False) -> Middleware:
    """Middleware that answers 401 unless the request carries `Authorization: Bearer <token>`
    (paths `exempt` answers for check their own sign-in: the console's session)."""
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if exempt(request.path):
            return await handler(request)
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return web.json_response(
                {
                    "success": False,
                    "error": "unauthorized",
                    "message": "send Authorization: Bearer <server.admin.token>",
                },
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="sambung admin"'},
            )
        return await handler(request)

    return guard


def admin_app(daemon: AdminHost, token: str) -> web.Application:
    """The admin app, with every subsystem's endpoints mounted."""
    app = web.Application(middlewares=[bearer_guard(token, exempt=is_console_path)])
    app[DAEMON_KEY] = daemon
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)
    app.router.add_get("/api/v1/status", status_endpoint)
    app.router.add_get("/api/v1/loops", loops_endpoint)
    add_dead_letter_routes(
        app,
        DeadLetters(
            daemon.store, daemon.loaded, clock=daemon.clock, live=lambda: daemon.dispatcher.status()
        ),
    )
    add_delivery_routes(app, DeliveryAttempts(daemon.store))
    add_upload_route(app, daemon)
    add_connect_route(app, daemon.credentials, lambda: daemon.loaded)
    add_backfill_routes(app, daemon.backfills)
    add_cursor_routes(app, daemon.cursors)
    add_control_routes(app, daemon.controls)
    add_alert_routes(app, daemon.store, lambda: daemon.loaded, daemon.clock)
    add_reconciliation_routes(
        app, lambda: ReconciliationService(daemon.store, daemon.loaded, daemon.clock)
    )
    add_console(app, daemon, token)
    return app


async def readyz(request: web.Request) -> web.Response:
    """200 when the store answers and every supervised loop runs (none down, stopped or
    crash-looping); 503 otherwise, naming each loop and why."""
    daemon = request.app[DAEMON_KEY]
    problems: list[str] = []
    try:
        await daemon.store.ping()
    except StoreUnavailable as err:
        problems.append(f"store: {err}")
    problems.extend(f"loop {name}: {why}" for name, why in loop_status(daemon.loops).items())
    status = 503 if problems else 200
    # The store's error may quote its server (a password in a connection error).
    body = {"ready": not problems, "problems": secrets.redact_all(problems)}
    return web.json_response(body, status=status)


async def metrics_endpoint(request: web.Request) -> web.Response:
    """Every series in Prometheus' text format, the outbox gauges refreshed first."""
    daemon = request.app[DAEMON_KEY]
    # If the store does not answer, serve the last values; /readyz reports the store.
    with contextlib.suppress(StoreUnavailable):
        await daemon.dispatcher.refresh_gauges()
    return web.Response(
        body=generate_latest(metrics.REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


async def loops_endpoint(request: web.Request) -> web.Response:
    """The loop problems of `/api/v1/status` alone, without touching the store (so it answers
    while the store hangs): what `sambung status` shows."""
    daemon = request.app[DAEMON_KEY]
    return web.json_response(
        {"replica": daemon.replica.id, "loop_problems": loop_status(daemon.loops)}
    )


async def status_endpoint(request: web.Request) -> web.Response:
    """Per outlet and connector and per sink: what is configured, what it is doing, what failed."""
    daemon = request.app[DAEMON_KEY]
    now = daemon.clock.now()
    body = {
        "connections": await connection_status(daemon.store, daemon.loaded),
        "sinks": await sink_status(daemon.store, daemon.loaded, now, daemon.dispatcher),
        "loops_stopped": daemon.loops.stopped(),
        "loop_problems": loop_status(daemon.loops),
        "replica": daemon.replica.id,
        "leases": await lease_status(daemon.store, now),
        "backfills": await backfill_status(daemon.store),
        **await status_parts(daemon.store, daemon.loaded, now),
    }
    return web.json_response(body)
