"""`sambung gaps` and `sambung alerts`, and their sections of `sambung status`."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from pydantic import BaseModel, ValidationError

from sambung.alerts.report import (
    AlertFilter,
    GapFilter,
    alert_report,
    alert_table,
    gap_report,
    gap_table,
    status_parts,
)
from sambung.config import LoadedConfig
from sambung.store import open_store
from sambung.validation import request_problem

from .loading import Commands, UsageError, check_outlet, load


def add_alert_commands(commands: Commands) -> None:
    """Declare `sambung gaps` and `sambung alerts`."""
    gaps = commands.add(
        "gaps",
        "Per outlet and day: records of webhook-and-poll connections no webhook delivered.",
        _gaps,
        need_env=False,
    )
    gaps.add_argument("--outlet")
    gaps.add_argument("--since", metavar="YYYY-MM-DD", help="business dates from this day on")
    gaps.add_argument("--json", action="store_true", help="one JSON object per line")
    alerts = commands.add(
        "alerts", "Open alerts, and those recovered lately.", _alerts, need_env=False
    )
    alerts.add_argument("--open", action="store_true", help="open alerts only")
    alerts.add_argument(
        "--since", metavar="WHEN", help="recovered ones from then on (ISO time; default a week)"
    )
    alerts.add_argument("--limit", type=int, default=100)
    alerts.add_argument("--json", action="store_true", help="one JSON object per line")


def _filters(model: type[BaseModel], values: dict[str, Any]) -> Any:
    """The command's options read into `model`, or a `UsageError` naming each problem."""
    try:
        return model.model_validate({k: v for k, v in values.items() if v is not None})
    except ValidationError as err:
        raise UsageError(request_problem(err, model)["message"]) from None


def _gaps(args: argparse.Namespace) -> int:
    _, loaded = load(args)
    check_outlet(loaded, args.outlet)
    filters = _filters(GapFilter, {"outlet": args.outlet, "since": args.since})

    async def show() -> None:
        store = open_store(loaded.config.store.url, base_dir=loaded.base_dir)
        await store.open()
        try:
            days = await gap_report(store, loaded, filters)
        finally:
            await store.close()
        if args.json:
            for day in days:
                print(json.dumps(day))
        else:
            print(gap_table(days) if days else _no_gaps(loaded))

    asyncio.run(show())
    return 0


def _no_gaps(loaded: LoadedConfig) -> str:
    from sambung.alerts.rules import gap_connections

    if not gap_connections(loaded):
        return "no connection takes both webhooks and polls (mode: [webhook, poll])"
    return "no records in that range"


def _alerts(args: argparse.Namespace) -> int:
    _, loaded = load(args)
    filters = _filters(AlertFilter, {"open": args.open, "since": args.since, "limit": args.limit})

    async def show() -> None:
        store = open_store(loaded.config.store.url, base_dir=loaded.base_dir)
        await store.open()
        try:
            alerts = await alert_report(store, filters, store.clock.now())
        finally:
            await store.close()
        if args.json:
            for alert in alerts:
                print(json.dumps(alert))
        else:
            print(alert_table(alerts) if alerts else "no alerts")

    asyncio.run(show())
    return 0


async def status_monitoring(loaded: LoadedConfig, store: Any, args: argparse.Namespace) -> None:
    """The webhook gaps of the last week and the open alerts, in `sambung status`."""
    parts = await status_parts(store, loaded, store.clock.now())
    if args.json:
        for day in parts["gaps"]:
            print(json.dumps({"section": "gaps", **day}))
        for alert in parts["alerts"]:
            print(json.dumps({"section": "alerts", **alert}))
        return
    if parts["gaps"]:
        print()
        print(gap_table(parts["gaps"]))
    print()
    alerts = parts["alerts"]
    print(alert_table(alerts) if alerts else "alerts: none open")
