"""Connector instances built from the config, for the subsystems that need them by name."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Generic, TypeVar
from zoneinfo import ZoneInfo

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sambung.clock import Clock
from sambung.config import Connection, LoadedConfig
from sambung.connectors import ConnectorContext, FileDropConnector, FileDropSettings, Mode
from sambung.errors import ConfigError, NotPolled, UnknownConnection
from sambung.validation import request_problem

log = structlog.get_logger(__name__)

# Starts one connection's next poll cycle now: (outlet, connector).
Wake = Callable[[str, str], None]
StoreT = TypeVar("StoreT")


class OperatorService(Generic[StoreT]):
    """What an operator's change to a connection works with: the daemon's store, config and
    clock, and the wake that lets the running loop pick the change up at once."""

    def __init__(
        self,
        store: StoreT,
        loaded: Callable[[], LoadedConfig],
        *,
        clock: Clock,
        wake: Wake | None = None,
    ) -> None:
        self.store = store
        self.loaded = loaded
        self.clock = clock
        # Set by the daemon once its poll loops run.
        self.wake = wake


def file_drop_connector(
    connection: Connection, clock: Clock, *, bound_to: str = "filedrop"
) -> FileDropConnector[FileDropSettings]:
    """The connector instance of one connection, for reading its CSV files."""
    bound = log.bind(outlet=connection.outlet.id, connector=connection.name, via=bound_to)
    context = ConnectorContext(
        outlet=connection.outlet, settings=connection.settings, log=bound, clock=clock
    )
    instance = connection.connector(context)
    if not isinstance(instance, FileDropConnector):
        raise ConfigError(f"connector {connection.name} cannot read CSV files (no file-drop mode)")
    return instance


def find_connection(loaded: LoadedConfig, outlet: str, connector: str) -> Connection:
    """The configured connection of `connector` at `outlet`; `ConfigError` if there is none."""
    for connection in loaded.connections:
        if connection.outlet.id == outlet and connection.name == connector:
            return connection
    raise ConfigError(f"outlet {outlet!r} has no {connector!r} connector in {loaded.path}")


def file_drop_connections(loaded: LoadedConfig) -> list[Connection]:
    """Enabled connections whose mode includes file-drop."""
    return [
        c for c in loaded.connections if c.settings.enabled and Mode.FILE_DROP in c.settings.mode
    ]


def polled_connection(loaded: LoadedConfig, outlet: str, connector: str) -> Connection:
    """The enabled polled connection of `connector` at `outlet`, for cursors and backfills;
    `UnknownConnection` if none is configured, `NotPolled` if it is not polled."""
    try:
        connection = find_connection(loaded, outlet, connector)
    except ConfigError:
        raise UnknownConnection(f"outlet {outlet!r} has no {connector!r} connector") from None
    if not connection.settings.enabled or Mode.POLL not in connection.settings.mode:
        raise NotPolled(f"{outlet}/{connector} is not polled (mode poll is not enabled)")
    return connection


def operator_instant(text: str, tz: ZoneInfo, *, end_of_day: bool = False) -> datetime:
    """An instant an operator typed: an ISO datetime (naive is read in `tz`), or a date,
    which is the start of that day at the outlet (with `end_of_day`, the start of the next,
    so `--until 2026-11-22` covers all of the 22nd); `ValueError` for anything else."""
    value = text.strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            if end_of_day:
                day += timedelta(days=1)
            moment = datetime(day.year, day.month, day.day, tzinfo=tz)
        else:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return (moment if moment.tzinfo else moment.replace(tzinfo=tz)).astimezone(UTC)
    except OverflowError:  # year 1 or 9999, moved past the calendar's end by the timezone
        raise ValueError(f"{value} is outside the years a cursor can hold") from None


class OperatorNote(BaseModel):
    """The body of an operator's change on the admin API (a cursor reset, a pause): optionally
    who and why."""

    model_config = ConfigDict(extra="forbid")

    actor: str = Field("admin-api", min_length=1, max_length=100)
    reason: str | None = Field(None, max_length=500)


def refusal(err: UnknownConnection | NotPolled | ValidationError | ValueError) -> web.Response:
    """The admin API's answer to a cursor or backfill request it cannot take: 404 for no such
    connection, 409 for one that is not polled, 400 (naming every problem) for a bad body."""
    if isinstance(err, UnknownConnection):
        body = {"success": False, "error": "not_found", "message": str(err)}
        return web.json_response(body, status=404)
    if isinstance(err, NotPolled):
        return web.json_response(
            {"success": False, "error": "conflict", "message": str(err)}, status=409
        )
    return web.json_response(request_problem(err), status=400)
