"""Cursors as an operator sees them: show each connection's, set it, reset it.

Every live-cursor move by a poll run says when and which run (`moved_at`, `moved_by` on the
cursor row, written with the page: nothing more on the hot path). An operator's set or reset
is the one way a cursor moves back. It goes through the running daemon (admin API), which
commits it in one transaction that bumps the cursor's generation and records who, when, before
and after (`cursor_changes`), then wakes the connection's loop: the loop reads the committed
cursor at the start of every run, so its next poll starts from the new value. A page of a run
that was in flight meanwhile carries the generation it read: its records are committed, its
cursor update is refused, so the operator's cursor stands.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sambung.connectors import Mode
from sambung.errors import NotPolled, UnknownConnection
from sambung.store import CursorChange, CursorState, CursorStore

from .connections import OperatorNote, OperatorService, operator_instant, polled_connection, refusal
from .polling import to_cursor

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class CursorView:
    """One connection's cursor with its operator history, newest change first."""

    outlet: str
    connector: str
    state: CursorState | None
    history: list[CursorChange]


class CursorService(OperatorService[CursorStore]):
    """Show, set and reset poll cursors (the daemon's, so its loops pick a change up)."""

    async def show(self, outlet: str, connector: str) -> CursorView:
        """One polled connection's cursor and history (`UnknownConnection` / `NotPolled`)."""
        polled_connection(self.loaded(), outlet, connector)
        return CursorView(
            outlet,
            connector,
            await self.store.get_cursor_state(outlet, connector),
            await self.store.cursor_changes(outlet, connector),
        )

    async def list(self, outlet: str | None = None) -> list[CursorView]:
        """Every polled connection (of one outlet), with its cursor if it has one; no history."""
        stored = {(c.outlet, c.connector): c for c in await self.store.list_cursors()}
        return [
            CursorView(c.outlet.id, c.name, stored.get((c.outlet.id, c.name)), [])
            for c in self.loaded().connections
            if c.settings.enabled
            and Mode.POLL in c.settings.mode
            and (outlet is None or c.outlet.id == outlet)
        ]

    async def set(
        self, outlet: str, connector: str, value: str, actor: str, reason: str | None = None
    ) -> CursorChange:
        """Set the cursor to `value` (an ISO datetime, or a date: that day's start at the
        outlet); `ValueError` for other text or a moment in the future."""
        connection = polled_connection(self.loaded(), outlet, connector)
        moment = operator_instant(value, connection.outlet.timezone)
        if moment > self.clock.now():
            raise ValueError(f"{value} is in the future: a cursor says what is already stored")
        return await self._change(outlet, connector, to_cursor(moment), actor, reason)

    async def reset(
        self, outlet: str, connector: str, actor: str, reason: str | None = None
    ) -> CursorChange:
        """Forget the cursor: the next poll starts `lookback` before now, as a first one."""
        polled_connection(self.loaded(), outlet, connector)
        return await self._change(outlet, connector, None, actor, reason)

    async def _change(
        self, outlet: str, connector: str, value: str | None, actor: str, reason: str | None
    ) -> CursorChange:
        change = await self.store.change_cursor(
            outlet, connector, value, actor=f"operator:{actor}", reason=reason
        )
        log.info(
            "cursor.changed",
            outlet=outlet,
            connector=connector,
            before=change.before,
            after=change.after,
            actor=change.actor,
        )
        if self.wake is not None:
            self.wake(outlet, connector)
        return change


def describe_change(change: CursorChange) -> dict[str, Any]:
    """One change as the admin API and `sambung cursor` show it."""
    return {
        "id": change.id,
        "before": change.before,
        "after": change.after,
        "actor": change.actor,
        "reason": change.reason,
        "at": change.at.isoformat(),
    }


def describe(view: CursorView) -> dict[str, Any]:
    """A connection's cursor as the admin API and `sambung cursor show` show it."""
    state = view.state
    return {
        "outlet": view.outlet,
        "connector": view.connector,
        "value": state.value if state else None,
        "moved_at": state.moved_at.isoformat() if state else None,
        "moved_by": state.moved_by if state else None,
        "generation": state.generation if state else 0,
        "history": [describe_change(change) for change in view.history],
    }


class _CursorBody(BaseModel):
    """`PUT .../cursor`: the new value, and optionally who and why."""

    model_config = ConfigDict(extra="forbid")

    value: str = Field(min_length=1, max_length=64)
    actor: str = Field("admin-api", min_length=1, max_length=100)
    reason: str | None = Field(None, max_length=500)


CURSORS_KEY: web.AppKey[CursorService] = web.AppKey("cursors", CursorService)
_CONNECTION = "/api/v1/connections/{outlet}/{connector}/cursor"


def add_cursor_routes(app: web.Application, service: CursorService) -> None:
    """Mount `/api/v1/cursors` and `/api/v1/connections/{outlet}/{connector}/cursor` (GET,
    PUT to set, DELETE to reset) on the admin app."""
    app[CURSORS_KEY] = service
    app.router.add_get("/api/v1/cursors", _list)
    app.router.add_get(_CONNECTION, _show)
    app.router.add_put(_CONNECTION, _set)
    app.router.add_delete(_CONNECTION, _reset)


def _connection(request: web.Request) -> tuple[str, str]:
    return request.match_info["outlet"], request.match_info["connector"]


async def _list(request: web.Request) -> web.Response:
    views = await request.app[CURSORS_KEY].list(request.query.get("outlet"))
    return web.json_response({"cursors": [describe(view) for view in views]})


async def _show(request: web.Request) -> web.Response:
    try:
        view = await request.app[CURSORS_KEY].show(*_connection(request))
    except (UnknownConnection, NotPolled) as err:
        return refusal(err)
    return web.json_response(describe(view))


async def _set(request: web.Request) -> web.Response:
    service = request.app[CURSORS_KEY]
    try:
        body = _CursorBody.model_validate_json(await request.read() or b"{}")
        change = await service.set(*_connection(request), body.value, body.actor, body.reason)
    except (UnknownConnection, NotPolled, ValidationError, ValueError) as err:
        return refusal(err)
    return web.json_response(
        {**describe(await service.show(*_connection(request))), "change": describe_change(change)}
    )


async def _reset(request: web.Request) -> web.Response:
    service = request.app[CURSORS_KEY]
    try:
        body = OperatorNote.model_validate_json(await request.read() or b"{}")
        change = await service.reset(*_connection(request), body.actor, body.reason)
    except (UnknownConnection, NotPolled, ValidationError, ValueError) as err:
        return refusal(err)
    return web.json_response(
        {**describe(await service.show(*_connection(request))), "change": describe_change(change)}
    )
