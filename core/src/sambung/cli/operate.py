"""`sambung backfill` and `sambung cursor`: rewind or re-read a connection, with the daemon.

The daemon owns the poll loops, so a backfill and a cursor change are asked of the running
daemon over its admin API (its loop picks them up at once); without a daemon they are refused,
naming why. `sambung cursor show` and `sambung backfill list` only read, straight from the
store, so they work with the daemon down too.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
import time
from datetime import datetime
from typing import Any, TextIO

from sambung.clock import SystemClock
from sambung.config import LoadedConfig
from sambung.errors import NotPolled, UnknownConnection
from sambung.runtime.adminclient import DaemonUnreachable, ask_daemon
from sambung.store import open_store

from .loading import Commands, UsageError, load

EXIT_FAILED = 1
# How often the progress of a backfill is asked for (seconds).
PROGRESS_EVERY = 0.5
BAR_WIDTH = 30


def add_operate_commands(commands: Commands) -> None:
    """`sambung backfill …` and `sambung cursor show|set|reset`."""
    backfill = commands.add(
        "backfill",
        "Re-poll a window of one connection (OUTLET CONNECTOR --since D), or `list` them.",
        _backfill,
        need_env=False,  # it only asks the daemon (or reads the store): no vendor secret
    )
    backfill.add_argument(
        "target", nargs="+", metavar="OUTLET CONNECTOR | list", help="what to backfill"
    )
    backfill.add_argument("--since", help="a date (the outlet's day) or an ISO datetime")
    backfill.add_argument("--until", help="as --since, a date meaning to its end (default: now)")
    backfill.add_argument(
        "--no-wait", action="store_true", help="queue it and return, without the progress bar"
    )
    backfill.add_argument("--json", action="store_true", help="the task(s) as JSON lines")
    cursor = commands.add(
        "cursor",
        "Show, set or reset poll cursors (set and reset through the daemon).",
        _cursor,
        need_env=False,
    )
    actions = commands.actions(cursor)
    show = actions.add("show", "each polled connection's cursor; one's history", need_env=False)
    show.add_argument("outlet", nargs="?")
    show.add_argument("connector", nargs="?")
    show.add_argument("--json", action="store_true", help="as JSON lines")
    set_ = actions.add(
        "set", "move a cursor (backwards too): the next poll starts there", need_env=False
    )
    set_.add_argument("outlet")
    set_.add_argument("connector")
    set_.add_argument("value", help="a date (the outlet's day start) or an ISO datetime")
    set_.add_argument("--reason", help="kept with the change")
    reset = actions.add(
        "reset", "forget a cursor: the next poll starts `lookback` ago", need_env=False
    )
    reset.add_argument("outlet")
    reset.add_argument("connector")
    reset.add_argument("--reason", help="kept with the change")


def _operator() -> str:
    """Who runs the command, as the change records it."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def _refused(status: int, body: Any) -> int:
    message = body.get("message") if isinstance(body, dict) else None
    print(f"sambung: the daemon refused ({status}): {message or body}", file=sys.stderr)
    return EXIT_FAILED


def _unreachable(err: DaemonUnreachable, what: str) -> int:
    print(f"sambung: {err}; {what} needs the running daemon (sambung run)", file=sys.stderr)
    return EXIT_FAILED


# -- backfill ------------------------------------------------------------------------------------


def _backfill(args: argparse.Namespace) -> int:
    _, loaded = load(args)
    if args.target == ["list"]:
        return asyncio.run(_list_backfills(loaded, args))
    if len(args.target) != 2 or not args.since:
        raise UsageError("give OUTLET CONNECTOR --since DATE [--until DATE], or list")
    outlet, connector = args.target
    body = {"since": args.since, "until": args.until, "requested_by": f"operator:{_operator()}"}
    try:
        status, task = asyncio.run(
            ask_daemon(loaded, "POST", f"/api/v1/connections/{outlet}/{connector}/backfill", body)
        )
    except DaemonUnreachable as err:
        return _unreachable(err, "a backfill")
    if status != 202:
        return _refused(status, task)
    if args.json and args.no_wait:
        print(json.dumps(task))
        return 0
    if not args.json:
        print(
            f"backfill #{task['id']} of {outlet}/{connector} queued:"
            f" {task['since']} to {task['until']}"
        )
    if args.no_wait:
        return 0
    return _follow(loaded, task, sys.stdout, as_json=args.json)


def _follow(loaded: LoadedConfig, task: dict[str, Any], out: TextIO, *, as_json: bool) -> int:
    """Show a task's progress until it ends: a bar on a terminal, else a line per change;
    `as_json`, only the finished task as one JSON line."""
    show = _quiet if as_json else _bar if out.isatty() else _line
    last: tuple[Any, ...] | None = None
    while True:
        try:
            status, found = asyncio.run(
                ask_daemon(loaded, "GET", f"/api/v1/backfills/{task['id']}")
            )
        except DaemonUnreachable as err:
            # The daemon stopped (or was killed): the task resumes when it runs again.
            print(f"\nsambung: {err}; the backfill resumes when the daemon runs", file=sys.stderr)
            return EXIT_FAILED
        if status != 200:
            return _refused(status, found)
        seen = (found["state"], found["pages"], found["position"])
        if seen != last:
            show(found, out)
            last = seen
        if found["state"] not in ("queued", "running"):
            break
        time.sleep(PROGRESS_EVERY)
    if as_json:
        print(json.dumps(found), file=out)
    else:
        if out.isatty():
            out.write("\n")
        print(_summary(found), file=out)
    return 0 if found["state"] == "done" else EXIT_FAILED


def _fraction(task: dict[str, Any]) -> float:
    """How far through its window a task is, by its position."""
    if task["state"] == "done":
        return 1.0
    if not task["position"]:
        return 0.0
    since, until = (datetime.fromisoformat(task[k]) for k in ("since", "until"))
    at = datetime.fromisoformat(task["position"])
    span = (until - since).total_seconds()
    return max(0.0, min(1.0, (at - since).total_seconds() / span)) if span > 0 else 1.0


def _counts(task: dict[str, Any]) -> str:
    return (
        f"pages {task['pages']}, new {task['records_new']}, changed {task['records_changed']},"
        f" unchanged {task['records_unchanged']}"
    )


def _bar(task: dict[str, Any], out: TextIO) -> None:
    done = _fraction(task)
    filled = round(done * BAR_WIDTH)
    bar = "#" * filled + "-" * (BAR_WIDTH - filled)
    out.write(f"\r[{bar}] {done:4.0%} {task['state']}: {_counts(task)}")
    out.flush()


def _quiet(task: dict[str, Any], out: TextIO) -> None:
    """No progress shown (`--json`)."""


def _line(task: dict[str, Any], out: TextIO) -> None:
    print(f"{_fraction(task):4.0%} {task['state']}: {_counts(task)}", file=out, flush=True)


def _summary(task: dict[str, Any]) -> str:
    text = f"backfill #{task['id']} {task['state']}: {_counts(task)}"
    return f"{text}; error: {task['error']}" if task.get("error") else text


async def _list_backfills(loaded: LoadedConfig, args: argparse.Namespace) -> int:
    from sambung.intake.backfill import describe
    from sambung.runtime.status import table

    store = open_store(loaded.config.store.url, base_dir=loaded.base_dir)
    await store.open()
    try:
        tasks = [describe(task) for task in await store.list_backfills()]
    finally:
        await store.close()
    if args.json:
        for task in tasks:
            print(json.dumps(task))
        return 0
    if not tasks:
        print("no backfills yet")
        return 0
    print(table(backfill_rows(tasks)))
    return 0


def backfill_rows(tasks: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """Backfill tasks as the rows of a text table (`sambung backfill list`, `status`)."""
    rows: list[tuple[str, ...]] = [
        ("ID", "OUTLET", "CONNECTOR", "WINDOW", "STATE", "DONE", "PAGES", "NEW", "CHANGED", "SAME")
    ]
    for t in tasks:
        rows.append(
            (
                f"#{t['id']}",
                t["outlet"],
                t["connector"],
                f"{t['since'][:16]}..{t['until'][:16]}",
                t["state"],
                f"{_fraction(t):.0%}",
                str(t["pages"]),
                str(t["records_new"]),
                str(t["records_changed"]),
                str(t["records_unchanged"]),
            )
        )
    return rows


# -- cursor --------------------------------------------------------------------------------------


def _cursor(args: argparse.Namespace) -> int:
    _, loaded = load(args)
    if args.action == "show":
        return asyncio.run(_show_cursors(loaded, args))
    path = f"/api/v1/connections/{args.outlet}/{args.connector}/cursor"
    body: dict[str, Any] = {"actor": _operator(), "reason": args.reason}
    if args.action == "set":
        body["value"] = args.value
    try:
        status, shown = asyncio.run(
            ask_daemon(loaded, "PUT" if args.action == "set" else "DELETE", path, body)
        )
    except DaemonUnreachable as err:
        return _unreachable(err, f"cursor {args.action}")
    if status != 200:
        return _refused(status, shown)
    change = shown["change"]
    start = "there" if change["after"] else "`lookback` before now, as a first one"
    print(
        f"{args.outlet}/{args.connector}: cursor {change['before'] or '(none)'} ->"
        f" {change['after'] or '(none)'} by {change['actor']}; the next poll starts {start}"
    )
    return 0


async def _show_cursors(loaded: LoadedConfig, args: argparse.Namespace) -> int:
    from sambung.intake.cursors import CursorService, describe
    from sambung.runtime.status import table

    store = open_store(loaded.config.store.url, base_dir=loaded.base_dir)
    await store.open()
    service = CursorService(store, lambda: loaded, clock=SystemClock())
    try:
        if args.outlet and args.connector:
            views = [await service.show(args.outlet, args.connector)]
        else:
            views = await service.list(args.outlet)
    except (UnknownConnection, NotPolled) as err:
        raise UsageError(str(err)) from None
    finally:
        await store.close()
    shown = [describe(view) for view in views]
    if args.json:
        for row in shown:
            print(json.dumps(row))
        return 0
    if not shown:
        print("no polled connections configured")
        return 0
    rows: list[tuple[str, ...]] = [("OUTLET", "CONNECTOR", "CURSOR", "MOVED AT", "MOVED BY")]
    rows.extend(
        (
            c["outlet"],
            c["connector"],
            c["value"] or "(none)",
            (c["moved_at"] or "-")[:19],
            c["moved_by"] or "-",
        )
        for c in shown
    )
    print(table(rows))
    for c in shown:
        if c["history"]:
            print(f"\n{c['outlet']}/{c['connector']}: operator changes, newest first")
            history: list[tuple[str, ...]] = [("AT", "ACTOR", "BEFORE", "AFTER", "REASON")]
            history.extend(
                (
                    h["at"][:19],
                    h["actor"],
                    h["before"] or "(none)",
                    h["after"] or "(none)",
                    h["reason"] or "",
                )
                for h in c["history"]
            )
            print(table(history))
    return 0


async def status_backfills(loaded: LoadedConfig, store: Any, args: argparse.Namespace) -> None:
    """The `sambung status` part on backfills: running ones with progress, then recent."""
    from sambung.intake.backfill import backfill_status
    from sambung.runtime.status import table

    tasks = await backfill_status(store)
    if args.json:
        for task in tasks:
            print(json.dumps({"section": "backfills", **task}))
        return
    if tasks:
        print()
        print(table(backfill_rows(tasks)))
