"""Delivery attempts: every outbox row with each attempt the dispatcher made of it.

The dispatcher keeps one `delivery_attempts` row per attempt, in the transaction that settles
it (`OutboxSettlement.attempt`): when it started, how long it took, what the receiver answered
(status, and its body masked and cut), and when the row goes next. `sambung deliveries …` and
the admin API (`/api/v1/deliveries`) read them through the `DeliveryAttempts` service here.
"""

from __future__ import annotations

import builtins
from dataclasses import asdict
from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sambung.store import DeliveryAttempt, DeliveryAttemptStore, DeliveryQuery, DeliveryRow
from sambung.validation import request_problem

DeliveryStatus = Literal["pending", "delivered", "dead", "superseded"]


class DeliveryFilter(BaseModel):
    """Filters for listing deliveries, as the CLI and the API take them."""

    model_config = ConfigDict(extra="forbid")

    sink: str | None = None
    status: DeliveryStatus | None = None
    outlet: str | None = None
    limit: int = Field(100, ge=1, le=10_000)

    def query(self) -> DeliveryQuery:
        """The store's query for these filters."""
        return DeliveryQuery(**self.model_dump())


class DeliveryAttempts:
    """Outbox rows and their kept attempts, over one store."""

    def __init__(self, store: DeliveryAttemptStore) -> None:
        self.store = store

    async def list(
        self,
        sink: str | None = None,
        status: DeliveryStatus | None = None,
        outlet: str | None = None,
        limit: int = 100,
    ) -> list[DeliveryRow]:
        """Outbox rows, newest first, each with its latest attempt."""
        return await self.store.list_deliveries(DeliveryQuery(sink, status, outlet, limit))

    async def show(self, outbox_id: int) -> dict[str, Any] | None:
        """One outbox row with every kept attempt, oldest first, as plain data."""
        row = await self.store.get_delivery(outbox_id)
        if row is None:
            return None
        shown = describe_delivery(row)
        shown["attempts"] = [describe_attempt(a) for a in await self.attempts(outbox_id)]
        return shown

    # `builtins.list`: inside this class, `list` is the method above.
    async def attempts(self, outbox_id: int) -> builtins.list[DeliveryAttempt]:
        """Every kept attempt of one outbox row, oldest first."""
        return await self.store.list_delivery_attempts(outbox_id)


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in data.items()}


def describe_attempt(attempt: DeliveryAttempt) -> dict[str, Any]:
    """One attempt as JSON-ready data."""
    return _plain(asdict(attempt))


def describe_delivery(row: DeliveryRow) -> dict[str, Any]:
    """One outbox row as JSON-ready data, its latest attempt nested."""
    data = _plain({k: v for k, v in asdict(row).items() if k != "latest"})
    data["latest"] = None if row.latest is None else describe_attempt(row.latest)
    return data


# -- the admin API ------------------------------------------------------------------------------

ATTEMPTS_KEY: web.AppKey[DeliveryAttempts] = web.AppKey("delivery_attempts", DeliveryAttempts)


def add_delivery_routes(app: web.Application, service: DeliveryAttempts) -> None:
    """Mount `/api/v1/deliveries` (list, show) on the admin app."""
    app[ATTEMPTS_KEY] = service
    app.router.add_get("/api/v1/deliveries", _list)
    app.router.add_get("/api/v1/deliveries/{id:\\d+}", _show)


async def _list(request: web.Request) -> web.Response:
    try:
        filters = DeliveryFilter.model_validate(dict(request.query))
    except ValidationError as err:
        return web.json_response(request_problem(err, DeliveryFilter), status=400)
    rows = await request.app[ATTEMPTS_KEY].list(**filters.model_dump())
    return web.json_response({"deliveries": [describe_delivery(row) for row in rows]})


async def _show(request: web.Request) -> web.Response:
    shown = await request.app[ATTEMPTS_KEY].show(int(request.match_info["id"]))
    if shown is None:
        return web.json_response({"success": False, "error": "not_found"}, status=404)
    return web.json_response(shown)
