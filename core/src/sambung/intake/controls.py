"""Pausing and resuming a connection while the daemon runs, and its recent runs.

A pause is an operator's, kept in the store (`connection_controls`): it survives a restart and
every replica honours it. While a connection is paused its poll loop does not poll and runs no
backfill (checked at the start of every cycle; a resume wakes the loop at once on this
replica, and within one interval on another), and its inbox takes no new file (files wait
there, nothing is lost). Webhooks are still accepted and stored: the vendor sent them once and
may never send them again, so refusing one would lose it; a paused connection stops what sambung
asks for, never what it is told.

Every poll run and backfill slice ends with one row in `poll_runs` (written by the loop, one
small write per run, the oldest beyond `RUNS_KEPT` pruned with it): what the operator sees as
the connection's recent runs.
"""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web
from pydantic import ValidationError

from sambung.config import Connection, LoadedConfig
from sambung.connectors import Mode
from sambung.errors import ConfigError, NotPolled, StoreUnavailable, UnknownConnection
from sambung.store import ConnectionControl, PollRun
from sambung.store.controls import ControlStore

from .connections import OperatorNote, OperatorService, find_connection, refusal

log = structlog.get_logger(__name__)

# The most runs one request may list (the store keeps `RUNS_KEPT` per connection).
MAX_RUNS = 200


async def is_paused(controls: ControlStore | None, outlet: str, connector: str, bound: Any) -> bool:
    """Whether an operator paused the connection (read from the store each time, so a pause
    made on another replica holds here too); an unreachable store counts as not paused (what
    would run then fails on it too, and says so)."""
    if controls is None:
        return False
    try:
        control = await controls.get_control(outlet, connector)
    except StoreUnavailable as err:
        bound.error("connection.pause_unknown", error=str(err))
        return False
    return control is not None and control.paused


def pausable_connection(loaded: LoadedConfig, outlet: str, connector: str) -> Connection:
    """The enabled connection of `connector` at `outlet` that a pause stops (polled, or with
    an inbox); `UnknownConnection` if none is configured, `NotPolled` if it only takes
    webhooks (those are never refused)."""
    try:
        connection = find_connection(loaded, outlet, connector)
    except ConfigError:
        raise UnknownConnection(f"outlet {outlet!r} has no {connector!r} connector") from None
    modes = connection.settings.mode
    if not connection.settings.enabled or not (Mode.POLL in modes or Mode.FILE_DROP in modes):
        raise NotPolled(
            f"{outlet}/{connector} is neither polled nor file-drop: nothing to pause"
            " (webhooks are always accepted)"
        )
    return connection


class ControlService(OperatorService[ControlStore]):
    """Pause and resume connections (the daemon's, so its loops pick a change up), and list
    their recent runs."""

    async def pause(
        self, outlet: str, connector: str, actor: str, reason: str | None = None
    ) -> ConnectionControl:
        """Pause one connection: no poll, no backfill, no new file until resumed."""
        return await self._set(outlet, connector, True, actor, reason)

    async def resume(
        self, outlet: str, connector: str, actor: str, reason: str | None = None
    ) -> ConnectionControl:
        """Resume one connection: its loop runs at once."""
        return await self._set(outlet, connector, False, actor, reason)

    async def control(self, outlet: str, connector: str) -> ConnectionControl | None:
        """One connection's pause state, if an operator ever paused or resumed it."""
        pausable_connection(self.loaded(), outlet, connector)
        return await self.store.get_control(outlet, connector)

    async def history(
        self, outlet: str, connector: str, limit: int = 20
    ) -> list[ConnectionControl]:
        """One connection's pauses and resumes, newest first (`UnknownConnection`)."""
        pausable_connection(self.loaded(), outlet, connector)
        return await self.store.control_changes(outlet, connector, limit)

    async def runs(self, outlet: str, connector: str, limit: int = 20) -> list[PollRun]:
        """One polled connection's recent runs, newest first (`UnknownConnection`)."""
        pausable_connection(self.loaded(), outlet, connector)
        return await self.store.recent_runs(outlet, connector, max(1, min(limit, MAX_RUNS)))

    async def _set(
        self, outlet: str, connector: str, paused: bool, actor: str, reason: str | None
    ) -> ConnectionControl:
        pausable_connection(self.loaded(), outlet, connector)
        control = await self.store.set_paused(
            outlet, connector, paused, actor=f"operator:{actor}", reason=reason
        )
        log.info(
            "connection.paused" if paused else "connection.resumed",
            outlet=outlet,
            connector=connector,
            actor=control.actor,
            reason=reason,
        )
        if self.wake is not None and not paused:
            self.wake(outlet, connector)
        return control


def describe_control(control: ConnectionControl | None) -> dict[str, Any]:
    """A connection's pause as the admin API, status and `sambung pause` show it."""
    if control is None:
        return {"paused": False, "actor": None, "reason": None, "changed_at": None}
    return {
        "paused": control.paused,
        "actor": control.actor,
        "reason": control.reason,
        "changed_at": control.changed_at.isoformat(),
    }


def describe_run(run: PollRun) -> dict[str, Any]:
    """One run as the admin API and `sambung runs` show it."""
    return {
        "id": run.id,
        "kind": run.kind,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat(),
        "seconds": round((run.finished_at - run.started_at).total_seconds(), 3),
        "outcome": run.outcome.value,
        "pages": run.pages,
        "records_fetched": run.records_fetched,
        "records_new": run.records_new,
        "records_changed": run.records_changed,
        "records_unchanged": run.records_unchanged,
        "error": run.error,
        "cursor_before": run.cursor_before,
        "cursor_after": run.cursor_after,
    }


CONTROLS_KEY: web.AppKey[ControlService] = web.AppKey("controls", ControlService)
_CONNECTION = "/api/v1/connections/{outlet}/{connector}"


def add_control_routes(app: web.Application, service: ControlService) -> None:
    """Mount `GET` and `POST .../pause`, `POST .../resume` and `GET .../runs` under
    `/api/v1/connections/{outlet}/{connector}` on the admin app."""
    app[CONTROLS_KEY] = service
    app.router.add_get(f"{_CONNECTION}/pause", _show)
    app.router.add_post(f"{_CONNECTION}/pause", _pause)
    app.router.add_post(f"{_CONNECTION}/resume", _resume)
    app.router.add_get(f"{_CONNECTION}/runs", _runs)


def _connection(request: web.Request) -> tuple[str, str]:
    return request.match_info["outlet"], request.match_info["connector"]


async def _show(request: web.Request) -> web.Response:
    service = request.app[CONTROLS_KEY]
    outlet, connector = _connection(request)
    try:
        control = await service.control(outlet, connector)
        history = await service.history(outlet, connector)
    except (UnknownConnection, NotPolled) as err:
        return refusal(err)
    return web.json_response(
        {
            "outlet": outlet,
            "connector": connector,
            **describe_control(control if control and control.paused else None),
            "history": [describe_control(change) for change in history],
        }
    )


async def _pause(request: web.Request) -> web.Response:
    return await _change(request, paused=True)


async def _resume(request: web.Request) -> web.Response:
    return await _change(request, paused=False)


async def _change(request: web.Request, *, paused: bool) -> web.Response:
    service = request.app[CONTROLS_KEY]
    outlet, connector = _connection(request)
    try:
        body = OperatorNote.model_validate_json(await request.read() or b"{}")
        change = service.pause if paused else service.resume
        control = await change(outlet, connector, body.actor, body.reason)
    except (UnknownConnection, NotPolled, ValidationError) as err:
        return refusal(err)
    return web.json_response(
        {"outlet": outlet, "connector": connector, **describe_control(control)}
    )


async def _runs(request: web.Request) -> web.Response:
    service = request.app[CONTROLS_KEY]
    outlet, connector = _connection(request)
    try:
        limit = int(request.query.get("limit", "20"))
        runs = await service.runs(outlet, connector, limit)
    except ValueError:
        return refusal(ValueError("limit must be a whole number"))
    except (UnknownConnection, NotPolled) as err:
        return refusal(err)
    return web.json_response(
        {"outlet": outlet, "connector": connector, "runs": [describe_run(r) for r in runs]}
    )
