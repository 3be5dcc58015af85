"""The gap report and the alerts as `/api/v1/status`, `/api/v1/gaps`, `/api/v1/alerts` and the
CLI show them: one function each over the store and the configuration, and their tables."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sambung.clock import Clock
from sambung.config import LoadedConfig
from sambung.store import Alert, MonitoringStore
from sambung.validation import request_problem

from .rules import gap_connections

# What status shows of the gap report and of recovered alerts: the last week.
STATUS_DAYS = 7


class GapFilter(BaseModel):
    """`GET /api/v1/gaps` and `sambung gaps`: one outlet, business dates from `since` on."""

    model_config = ConfigDict(extra="forbid")

    outlet: str | None = None
    since: date | None = None


class AlertFilter(BaseModel):
    """`GET /api/v1/alerts` and `sambung alerts`: open alerts, and those recovered since."""

    model_config = ConfigDict(extra="forbid")

    open: bool = False
    since: datetime | None = None
    limit: int = Field(100, ge=1, le=10_000)


async def gap_report(
    store: MonitoringStore, loaded: LoadedConfig, filters: GapFilter
) -> list[dict[str, Any]]:
    """Per webhook-and-poll connection and business date: records, and how many came only by
    poll (`poll_only`: no webhook ever delivered them)."""
    days = await store.webhook_gaps(
        gap_connections(loaded), outlet=filters.outlet, since=filters.since
    )
    return [
        {
            "outlet": d.outlet,
            "connector": d.connector,
            "business_date": d.business_date.isoformat(),
            "poll_only": d.poll_only,
            "total": d.total,
        }
        for d in days
    ]


def describe_alert(alert: Alert) -> dict[str, Any]:
    """One alert as JSON: open or recovered, since when."""
    return {
        "id": alert.id,
        "rule": alert.rule,
        "subject": alert.subject,
        "state": "open" if alert.recovered_at is None else "recovered",
        "message": alert.message,
        "opened_at": alert.opened_at.isoformat(),
        "recovered_at": None if alert.recovered_at is None else alert.recovered_at.isoformat(),
    }


async def alert_report(
    store: MonitoringStore, filters: AlertFilter, now: datetime
) -> list[dict[str, Any]]:
    """Open alerts, and (unless `open`) those recovered since `since` (default: a week ago)."""
    since = filters.since or now - timedelta(days=STATUS_DAYS)
    alerts = await store.list_alerts(open_only=filters.open, since=since, limit=filters.limit)
    return [describe_alert(a) for a in alerts]


async def status_parts(
    store: MonitoringStore, loaded: LoadedConfig, now: datetime
) -> dict[str, Any]:
    """What `/api/v1/status` adds: `gaps` (the last week) and `alerts` (the open ones)."""
    since = (now - timedelta(days=STATUS_DAYS)).date()
    return {
        "gaps": await gap_report(store, loaded, GapFilter(since=since)),
        "alerts": await alert_report(store, AlertFilter(open=True), now),
    }


def gap_table(days: list[dict[str, Any]]) -> str:
    """The gap report as a text table."""
    from sambung.runtime.status import table

    rows: list[tuple[str, ...]] = [("OUTLET", "CONNECTOR", "DATE", "POLL ONLY", "TOTAL", "LOST")]
    for d in days:
        lost = f"{100 * d['poll_only'] / d['total']:.0f}%" if d["total"] else "-"
        row = (d["outlet"], d["connector"], d["business_date"], str(d["poll_only"]))
        rows.append((*row, str(d["total"]), lost))
    return table(rows)


def alert_table(alerts: list[dict[str, Any]]) -> str:
    """Alerts as a text table."""
    from sambung.runtime.status import table

    rows: list[tuple[str, ...]] = [("ID", "STATE", "RULE", "SUBJECT", "SINCE", "MESSAGE")]
    for a in alerts:
        since = a["opened_at"] if a["state"] == "open" else a["recovered_at"]
        rows.append(
            (f"#{a['id']}", a["state"], a["rule"], a["subject"], since[:19], a["message"][:60])
        )
    return table(rows)


# -- the admin API -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Host:
    """What the routes read at each request (a reload replaces `loaded`)."""

    store: MonitoringStore
    loaded: Callable[[], LoadedConfig]
    clock: Clock


_HOST_KEY: web.AppKey[_Host] = web.AppKey("alerts")


def add_alert_routes(
    app: web.Application,
    store: MonitoringStore,
    loaded: Callable[[], LoadedConfig],
    clock: Clock,
) -> None:
    """Mount `GET /api/v1/gaps` and `GET /api/v1/alerts` on the admin app; `loaded` is a
    callable giving the configuration installed now."""
    app[_HOST_KEY] = _Host(store, loaded, clock)
    app.router.add_get("/api/v1/gaps", _gaps)
    app.router.add_get("/api/v1/alerts", _alerts)


async def _gaps(request: web.Request) -> web.Response:
    host = request.app[_HOST_KEY]
    try:
        filters = GapFilter.model_validate(dict(request.query))
    except ValidationError as err:
        return web.json_response(request_problem(err, GapFilter), status=400)
    return web.json_response({"gaps": await gap_report(host.store, host.loaded(), filters)})


async def _alerts(request: web.Request) -> web.Response:
    host = request.app[_HOST_KEY]
    try:
        filters = AlertFilter.model_validate(dict(request.query))
    except ValidationError as err:
        return web.json_response(request_problem(err, AlertFilter), status=400)
    alerts = await alert_report(host.store, filters, host.clock.now())
    return web.json_response({"alerts": alerts})
