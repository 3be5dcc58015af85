"""`sambung deliveries list|show`: outbox rows and every attempt kept of each."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import get_args

from sambung.config import LoadedConfig
from sambung.delivery.attempts import (
    DeliveryAttempts,
    DeliveryFilter,
    DeliveryStatus,
    describe_delivery,
)
from sambung.delivery.redrive import LiveSinks, RedriveGroup, ReplayTally
from sambung.store import DeliveryAttempt, DeliveryRow, open_store

from .loading import Commands, check_outlet, load

# How much of an error or answer a table cell shows; `show --json` has all that is kept.
CELL = 72


def add_deliveries_command(commands: Commands) -> None:
    """`sambung deliveries list|show`."""
    command = commands.add(
        "deliveries",
        "Outbox rows and every delivery attempt of each: list, show.",
        _deliveries,
        need_env=False,
    )
    actions = commands.actions(command)
    listing = actions.add(
        "list", "outbox rows, newest first, with their latest attempt", need_env=False
    )
    listing.add_argument("--sink")
    listing.add_argument("--status", choices=get_args(DeliveryStatus))
    listing.add_argument("--outlet")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true", help="one JSON row per line")
    show = actions.add("show", "one outbox row and all its attempts, oldest first", need_env=False)
    show.add_argument("id", type=int)
    show.add_argument("--json", action="store_true", help="the row as one JSON object")


def _deliveries(args: argparse.Namespace) -> int:
    _, loaded = load(args)
    check_outlet(loaded, getattr(args, "outlet", None))

    async def act() -> int:
        store = open_store(loaded.config.store.url, base_dir=loaded.base_dir)
        await store.open()
        try:
            service = DeliveryAttempts(store)
            if args.action == "list":
                wanted = DeliveryFilter(
                    sink=args.sink, status=args.status, outlet=args.outlet, limit=args.limit
                )
                _print_list(await service.list(**wanted.model_dump()), as_json=args.json)
                return 0
            shown = await service.show(args.id)
            if shown is None:
                print(f"no outbox row #{args.id}", file=sys.stderr)
                return 1
            if args.json:
                print(json.dumps(shown))
                return 0
            row = await store.get_delivery(args.id)
            assert row is not None
            print(delivery_heading(row))
            print()
            print(attempts_table(await service.attempts(args.id)))
            return 0
        finally:
            await store.close()

    return asyncio.run(act())


def _print_list(rows: Sequence[DeliveryRow], *, as_json: bool) -> None:
    from sambung.runtime.status import table

    if as_json:
        for row in rows:
            print(json.dumps(describe_delivery(row)))
        return
    if not rows:
        print("no outbox rows match")
        return
    lines: list[tuple[str, ...]] = [
        ("ID", "CREATED", "SINK", "RECORD", "STATUS", "TRIES", "LAST ATTEMPT", "NEXT")
    ]
    lines.extend(
        (
            f"#{row.id}",
            _when(row.created_at),
            row.sink,
            f"{row.outlet}/{row.source_system}/{row.external_id} r{row.revision}",
            row.status,
            str(row.attempts),
            _outcome(row.latest) if row.latest else "-",
            _when(row.next_attempt_at) if row.status == "pending" else "-",
        )
        for row in rows
    )
    print(table(lines))


def delivery_heading(row: DeliveryRow) -> str:
    """The lines `deliveries show` starts with: what the row carries and where it stands."""
    lines = [
        f"outbox row #{row.id} to sink {row.sink}: {row.status}, {row.attempts} attempt(s)",
        f"record: {row.outlet}/{row.source_system} {row.kind} {row.external_id}"
        f" revision {row.revision}",
        f"created: {_when(row.created_at)}",
    ]
    if row.status == "pending":
        lines.append(f"next attempt: {_when(row.next_attempt_at)}")
    if row.delivered_at is not None:
        lines.append(f"delivered: {_when(row.delivered_at)}")
    return "\n".join(lines)


def attempts_table(attempts: Sequence[DeliveryAttempt]) -> str:
    """Kept attempts as a text table, oldest first (also under `dlq show` of a delivery)."""
    from sambung.runtime.status import table

    if not attempts:
        return "no attempts kept (none made yet, or past delivery.attempts_retention)"
    lines: list[tuple[str, ...]] = [
        ("#", "STARTED", "OUTCOME", "HTTP", "LATENCY", "ERROR / ANSWER", "NEXT")
    ]
    lines.extend(
        (
            str(a.attempt),
            _when(a.started_at),
            a.outcome,
            str(a.http_status) if a.http_status is not None else "-",
            f"{a.latency_ms} ms" if a.latency_ms is not None else "-",
            _cell(_reason(a)),
            _when(a.next_attempt_at) if a.next_attempt_at else "-",
        )
        for a in attempts
    )
    return table(lines)


def _reason(attempt: DeliveryAttempt) -> str:
    if attempt.outcome == "delivered":
        return attempt.response or "-"
    error = attempt.error or ""
    return f"{attempt.error_type}: {error}" if attempt.error_type else error


def _outcome(attempt: DeliveryAttempt) -> str:
    status = f" {attempt.http_status}" if attempt.http_status is not None else ""
    return f"{attempt.outcome}{status} {_when(attempt.started_at)}"


def _cell(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= CELL else flat[: CELL - 1] + "…"


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S}Z" if value is not None else "-"


async def daemon_sinks(loaded: LoadedConfig) -> tuple[LiveSinks, str | None]:
    """What the running daemon says of its sinks (disabled, paused until), for a dry run in
    this process apart; with why not when it does not answer."""
    from sambung.runtime.adminclient import DaemonUnreachable, ask_daemon

    try:
        status, found = await ask_daemon(loaded, "GET", "/api/v1/status", timeout=3.0)
    except DaemonUnreachable as err:
        return {}, str(err)
    if status != 200 or not isinstance(found, dict):
        return {}, f"the daemon answered {status} to /api/v1/status"
    return {sink["sink"]: sink for sink in found.get("sinks") or ()}, None


def print_groups(
    groups: Sequence[RedriveGroup],
    as_json: bool,
    *,
    dry_run: bool = False,
    unknown: str | None = None,
) -> None:
    """`dlq list --group` and `dlq replay --dry-run`: a table of groups, then what a replay of
    each would do now."""
    from sambung.runtime.status import table

    if as_json:
        for group in groups:
            print(json.dumps(group.describe()))
        return
    if not groups:
        print("no open dead letters match")
        return
    lines: list[tuple[str, ...]] = [
        ("GROUP", "STAGE", "CONNECTOR/SINK", "ERROR TYPE", "ENTRIES", "OUTLETS", "NEWEST")
    ]
    lines.extend(
        (
            str(n),
            group.stage,
            group.target,
            group.error_type,
            str(len(group.plans)),
            ",".join(group.outlets),
            _when(group.newest),
        )
        for n, group in enumerate(groups, 1)
    )
    print(table(lines))
    print()
    print("a replay now would:" if not dry_run else "dry run, nothing changed; a replay now would:")
    for n, group in enumerate(groups, 1):
        print(f"  {n}. {group.summary()}")
    if unknown and any(group.stage == "delivery" for group in groups):
        print(f"(whether a sink is paused or disabled is not known: {unknown})")


def tally_table(tallies: Sequence[ReplayTally]) -> str:
    """What a real replay did, per group."""
    from sambung.runtime.status import table

    lines: list[tuple[str, ...]] = [("STAGE", "CONNECTOR/SINK", "ERROR TYPE", "RESULT")]
    for counted in tallies:
        results = ", ".join(
            f"{count} {result}" for result, count in sorted(counted.results.items())
        )
        detail = f" ({_cell(counted.detail)})" if counted.detail else ""
        lines.append((counted.stage, counted.target, counted.error_type, results + detail))
    return table(lines)
