"""`sambung pause`, `sambung resume` and `sambung runs`: stop and restart what the daemon asks
of one connection's vendor, and see that connection's recent poll runs.

A pause and a resume go through the running daemon (admin API), which wakes the loop on
resume; `sambung runs` only reads, straight from the store, so it works with the daemon down.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from sambung.clock import SystemClock
from sambung.errors import NotPolled, UnknownConnection
from sambung.runtime.adminclient import DaemonUnreachable, ask_daemon
from sambung.store import open_store

from .loading import Commands, UsageError, load
from .operate import _operator, _refused, _unreachable


def add_control_commands(commands: Commands) -> None:
    """`sambung pause`, `sambung resume` and `sambung runs`."""
    for action, summary in (
        ("pause", "Pause a connection: no polls, backfills or inbox files until resumed."),
        ("resume", "Resume a paused connection: its loop runs at once."),
    ):
        sub = commands.add(action, summary, _change, need_env=False)
        sub.add_argument("outlet")
        sub.add_argument("connector")
        sub.add_argument("--reason", help="kept with the change, shown by status")
    runs = commands.add(
        "runs", "A connection's recent poll runs and backfill slices.", _runs, need_env=False
    )
    runs.add_argument("outlet")
    runs.add_argument("connector")
    runs.add_argument("--limit", type=int, default=20, help="how many, newest first")
    runs.add_argument("--json", action="store_true", help="as JSON lines")


def _change(args: argparse.Namespace) -> int:
    _, loaded = load(args)
    path = f"/api/v1/connections/{args.outlet}/{args.connector}/{args.command}"
    body = {"actor": _operator(), "reason": args.reason}
    try:
        status, shown = asyncio.run(ask_daemon(loaded, "POST", path, body))
    except DaemonUnreachable as err:
        return _unreachable(err, args.command)
    if status != 200:
        return _refused(status, shown)
    if shown["paused"]:
        print(
            f"{args.outlet}/{args.connector}: paused by {shown['actor']}; no polls, backfills"
            " or inbox files until `sambung resume` (webhooks are still accepted)"
        )
    else:
        print(f"{args.outlet}/{args.connector}: resumed by {shown['actor']}; polling now")
    return 0


def _runs(args: argparse.Namespace) -> int:
    from sambung.intake.controls import ControlService, describe_run
    from sambung.runtime.status import table

    _, loaded = load(args)

    async def read() -> list[dict[str, object]]:
        store = open_store(loaded.config.store.url, base_dir=loaded.base_dir)
        await store.open()
        try:
            service = ControlService(store, lambda: loaded, clock=SystemClock())
            runs = await service.runs(args.outlet, args.connector, args.limit)
        except (UnknownConnection, NotPolled) as err:
            raise UsageError(str(err)) from None
        finally:
            await store.close()
        return [describe_run(run) for run in runs]

    shown = asyncio.run(read())
    if args.json:
        for row in shown:
            print(json.dumps(row))
        return 0
    if not shown:
        print(f"{args.outlet}/{args.connector}: no runs yet")
        return 0
    rows: list[tuple[str, ...]] = [
        ("STARTED", "KIND", "OUTCOME", "SECONDS", "PAGES", "NEW", "CHANGED", "SAME", "ERROR")
    ]
    rows.extend(
        (
            str(r["started_at"])[:19],
            str(r["kind"]),
            str(r["outcome"]),
            str(r["seconds"]),
            str(r["pages"]),
            str(r["records_new"]),
            str(r["records_changed"]),
            str(r["records_unchanged"]),
            str(r["error"] or "")[:50],
        )
        for r in shown
    )
    print(table(rows))
    return 0
