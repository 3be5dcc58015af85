"""The `sambung` command: run the daemon, check a config, list plugins, look at stored records."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

from sambung import __version__, logs
from sambung.clock import SystemClock
from sambung.config import LoadedConfig
from sambung.errors import ConfigError, ListenerUnavailable
from sambung.models import RecordKind
from sambung.store import display_url, open_store

from .alerts import add_alert_commands, status_monitoring
from .backup import add_backup_commands
from .controls import add_control_commands
from .deliveries import (
    add_deliveries_command,
    attempts_table,
    daemon_sinks,
    print_groups,
    tally_table,
)
from .importcmd import add_import_command
from .init import add_init_command
from .loading import Commands, UsageError, check_outlet, load, plugin_registry
from .operate import add_operate_commands, status_backfills
from .reconcile import add_reconcile_command
from .report import check_report, plugins_report

EXIT_CONFIG = 2
EXIT_BROKEN_PIPE = 128 + 13  # as if killed by SIGPIPE, which Python ignores


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `sambung` console script."""
    try:
        code = _main(argv)
        sys.stdout.flush()  # here, not at exit, so a closed pipe is answered below
        return code
    except BrokenPipeError:
        # `sambung status | head -1`: the reader has gone; say nothing more, as `cat` does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _main(argv: Sequence[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_CONFIG
    logs.configure(level=os.environ.get("SAMBUNG_LOG_LEVEL", "info"))
    try:
        return int(args.handler(args) or 0)
    except ConfigError as err:
        print(
            f"sambung: configuration is not valid ({len(err.problems)} problem"
            f"{'s' if len(err.problems) != 1 else ''}):",
            file=sys.stderr,
        )
        for problem in err.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_CONFIG
    except ListenerUnavailable as err:
        print(f"sambung: cannot start: {err}", file=sys.stderr)
        return 1
    except UsageError as err:
        print(f"sambung: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sambung", description=__doc__)
    parser.add_argument("--version", action="version", version=f"sambung {__version__}")
    commands = Commands(parser.add_subparsers(title="commands", metavar="COMMAND"))
    command = commands.add

    run = command("run", "Run the daemon until SIGTERM or Ctrl-C.", _run)
    run.add_argument(
        "--simulate",
        action="store_true",
        help="also run the bundled simulator, which posts signed demo webhooks",
    )
    run.add_argument(
        "--log-file",
        type=Path,
        help="log to this file, reopened on SIGHUP (default: log.file, else stderr)",
    )
    command("check", "Validate a config and print outlets, connectors and webhook URLs.", _check)
    command(
        "plugins",
        "List installed plugins: name, version, connectors and modes.",
        _plugins,
        config=False,
    )
    records = command(
        "records", "Print the most recently stored records.", _records, need_env=False
    )
    records.add_argument("--outlet")
    records.add_argument("--source-system", "--connector", dest="source_system")
    records.add_argument("--kind", choices=get_args(RecordKind))
    records.add_argument("--limit", type=int, default=20)
    records.add_argument("--json", action="store_true", help="one JSON record per line")
    _add_delivery_commands(commands)
    add_deliveries_command(commands)
    _add_store_commands(commands)
    add_import_command(commands)
    add_reconcile_command(commands)
    add_init_command(commands)
    add_backup_commands(commands, load)
    _add_credential_commands(commands)
    add_operate_commands(commands)
    add_control_commands(commands)
    add_alert_commands(commands)
    status = command(
        "status", "Print the state of every connection and every sink.", _status, need_env=False
    )
    status.add_argument("--json", action="store_true", help="one JSON object per line")
    return parser


def _run(args: argparse.Namespace) -> int:
    from sambung.runtime.daemon import Daemon, serve

    registry, loaded = load(args)
    settings = loaded.config.log
    log_file = args.log_file or (loaded.base_dir / settings.file if settings.file else None)
    from sambung.runtime.logfile import open_log_file

    stream = open_log_file(log_file) if log_file else None
    logs.configure(level=settings.level, fmt=settings.format, stream=stream)
    daemon = Daemon(loaded, registry)
    also = None
    if args.simulate:
        from sambung.runtime.simulator import simulate_all

        also = simulate_all
    asyncio.run(serve(daemon, also=also))
    return 0


def _check(args: argparse.Namespace) -> int:
    _, loaded = load(args)
    print("\n".join(check_report(loaded)))
    return 0


def _plugins(_args: argparse.Namespace) -> int:
    registry = plugin_registry()
    print("\n".join(plugins_report(registry)))
    return 1 if registry.failures else 0


# -- the store itself: migrations, and moving from SQLite to PostgreSQL --------------------------


def _add_store_commands(commands: Commands) -> None:
    """`sambung migrate` and `sambung export`."""
    commands.add(
        "migrate", "Apply the store's pending schema migrations and name each one.", _migrate
    )
    export = commands.add(
        "export",
        "Copy this config's SQLite store into PostgreSQL: records, outbox, cursors, everything.",
        _export,
    )
    export.add_argument("--to", required=True, metavar="URL", help="postgresql://USER@HOST/DB")
    export.add_argument(
        "--replace", action="store_true", help="empty a PostgreSQL store that already has rows"
    )


def _migrate(args: argparse.Namespace) -> int:
    _, loaded = load(args)
    url = loaded.config.store.url
    applied = asyncio.run(open_store(url, base_dir=loaded.base_dir).migrate())
    for name in applied:
        print(f"applied {name}")
    print(f"{display_url(url)}: schema up to date ({len(applied)} migration(s) applied now)")
    return 0


def _export(args: argparse.Namespace) -> int:
    from sambung.store.export import export_sqlite
    from sambung.store.sqlite import SqliteStore

    _, loaded = load(args)
    source = open_store(loaded.config.store.url, base_dir=loaded.base_dir)
    target = open_store(args.to, base_dir=loaded.base_dir)
    if not isinstance(source, SqliteStore) or isinstance(target, SqliteStore):
        raise ConfigError("export copies a sqlite:/// store.url into a postgresql:// --to URL")
    copied = asyncio.run(export_sqlite(source.path, args.to, replace=args.replace))
    for table, rows in copied.items():
        print(f"{table:<20} {rows:>10,} rows")
    print(
        f"exported {source.path} to {display_url(args.to)}; stop the daemon that used the SQLite"
        " file, then set store.url to the PostgreSQL URL and start it again"
    )
    return 0


def _records(args: argparse.Namespace) -> int:
    from sambung.runtime.status import table

    _, loaded = load(args)
    check_outlet(loaded, args.outlet)

    async def show() -> None:
        # The daemon's own loops first: they are known even when the store does not answer.
        # Not with --json, which promises one record per line and nothing else.
        if not args.json:
            await _status_loops(loaded, args)
        store = open_store(loaded.config.store.url, base_dir=loaded.base_dir)
        await store.open()
        try:
            rows = await store.list_records(
                outlet=args.outlet,
                source_system=args.source_system,
                kind=args.kind,
                limit=args.limit,
            )
        finally:
            await store.close()
        if args.json:
            for row in rows:
                print(row.payload)
            return
        if not rows:
            print("no records match")
            return
        header = ("ID", "OUTLET", "CONNECTOR", "KIND", "EXTERNAL ID", "REV", "AMOUNT", "UPDATED")
        lines: list[tuple[str, ...]] = [header]
        for row in rows:
            record = json.loads(row.payload)
            amount = record.get("total") or record.get("amount") or record.get("quantity") or ""
            lines.append(
                (
                    f"#{row.id}",
                    row.outlet,
                    row.source_system,
                    row.kind,
                    row.external_id,
                    f"r{row.revision}",
                    str(amount),
                    f"{row.updated_at:%Y-%m-%d %H:%M:%S}Z",
                )
            )
        print(table(lines))

    asyncio.run(show())
    return 0


# -- credentials: the OAuth connect flow ---------------------------------------------------------


def _add_credential_commands(commands: Commands) -> None:
    """`sambung connect OUTLET CONNECTOR`, `sambung connect --sink NAME` and
    `sambung credentials list`."""
    connect = commands.add(
        "connect",
        "Print the vendor's authorization URL for one connection or sink (OAuth); open it.",
        _connect,
    )
    connect.add_argument("outlet", nargs="?")
    connect.add_argument("connector", nargs="?")
    connect.add_argument("--sink", help="connect this sink (by its name under sinks:) instead")
    connect.add_argument("--json", action="store_true", help="the link as one JSON object")
    credentials = commands.add(
        "credentials", "Stored credentials: which exist and when they expire.", _credentials
    )
    listing = commands.actions(credentials).add(
        "list", "outlet, connector, kind, expiry; never a value", need_env=False
    )
    listing.add_argument("--json", action="store_true", help="one JSON object per line")


async def _open_credentials(loaded: LoadedConfig) -> Any:
    from sambung.auth.credentials import CredentialService, SecretBox, key_file_of, load_key

    box = SecretBox(load_key(key_file_of(loaded)))
    store = open_store(loaded.config.store.url, base_dir=loaded.base_dir)
    await store.open()
    return CredentialService(store, box)


def _connect(args: argparse.Namespace) -> int:
    from sambung.auth.connect import start_connect
    from sambung.auth.oauth import SINK_OUTLET

    if (args.sink is None) == (args.outlet is None or args.connector is None) or (
        args.sink is not None and args.outlet is not None
    ):
        print("give either OUTLET CONNECTOR or --sink NAME", file=sys.stderr)
        return 2
    outlet, name = (SINK_OUTLET, args.sink) if args.sink else (args.outlet, args.connector)
    _, loaded = load(args)
    check_outlet(loaded, args.outlet)

    async def go() -> Any:
        credentials = await _open_credentials(loaded)
        try:
            return await start_connect(credentials, loaded, outlet, name)
        finally:
            await credentials.store.close()

    link = asyncio.run(go())
    if args.json:
        print(
            json.dumps(
                {
                    "outlet": link.outlet,
                    "connector": link.connector,
                    "authorization_url": link.authorization_url,
                    "expires_at": link.expires_at.isoformat(),
                    "redirect_uri": link.redirect_uri,
                }
            )
        )
        return 0
    what = f"sink {name}" if args.sink else f"{link.connector} at outlet {link.outlet}"
    print(f"Open this link to connect {what}:")
    print()
    print(f"  {link.authorization_url}")
    print()
    print(f"It works once, until {_when(link.expires_at)}; the vendor sends you back to")
    print(f"{link.redirect_uri} (the running daemon's public listener).")
    return 0


def _credentials(args: argparse.Namespace) -> int:
    _, loaded = load(args)

    async def go() -> list[Any]:
        store = open_store(loaded.config.store.url, base_dir=loaded.base_dir)
        await store.open()
        try:
            found: list[Any] = await store.list_credentials()
            return found
        finally:
            await store.close()

    infos = asyncio.run(go())
    now = SystemClock().now()
    lines: list[tuple[str, ...]] = [("OUTLET", "CONNECTOR", "KIND", "EXPIRES", "UPDATED")]
    for info in infos:
        expired = info.expires_at is not None and info.expires_at <= now
        row = {
            "outlet": info.outlet,
            "connector": info.connector,
            "kind": info.kind,
            "expires_at": _when(info.expires_at),
            "expired": expired,
            "updated_at": _when(info.updated_at),
        }
        if args.json:
            print(json.dumps(row))
            continue
        expiry = row["expires_at"] or "no expiry given"
        note = " (expired: refreshed on next use)" if expired else ""
        lines.append(
            (info.outlet, info.connector, info.kind, expiry + note, row["updated_at"] or "-")
        )
    if infos and not args.json:
        from sambung.runtime.status import table

        print(table(lines))
    if not infos and not args.json:
        print(
            "no stored credentials (connect with: sambung connect -c FILE OUTLET CONNECTOR,"
            " or for a sink: sambung connect -c FILE --sink NAME)"
        )
    return 0


# -- outbox: dead letters and status ------------------------------------------------------------


def _add_delivery_commands(commands: Commands) -> None:
    """`sambung dlq …`."""
    dlq = commands.add("dlq", "Dead letters of every stage: list, show, replay, discard.", _dlq)
    actions = commands.actions(dlq)

    def filters(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--stage", choices=["ingest", "row", "delivery"])
        sub.add_argument("--outlet")
        sub.add_argument("--connector")
        sub.add_argument("--sink", help="the sink a delivery entry was bound for")
        sub.add_argument("--error-type", help="the entry's error class, e.g. DeliveryRejected")
        sub.add_argument("--since", help="ISO date or time, e.g. 2026-11-26 or 2026-11-26T10:00Z")
        sub.add_argument("--limit", type=int, default=100)

    listing = actions.add("list", "open dead letters, newest first", need_env=False)
    filters(listing)
    listing.add_argument("--status", choices=["open", "replayed", "discarded", "any"])
    listing.add_argument("--json", action="store_true", help="one JSON entry per line")
    listing.add_argument(
        "--group",
        action="store_true",
        help="open entries by stage, connector or sink, and error class, with what a replay "
        "would do now",
    )
    show = actions.add("show", "one entry: error, attempts, payload", need_env=False)
    show.add_argument("id", type=int)
    replay = actions.add("replay", "replay entries by id, or --all matching filters")
    replay.add_argument("ids", type=int, nargs="*")
    replay.add_argument("--all", action="store_true")
    replay.add_argument(
        "--dry-run",
        action="store_true",
        help="say per group what a replay would do now, and change nothing",
    )
    replay.add_argument("--json", action="store_true", help="one JSON group per line")
    filters(replay)
    discard = actions.add("discard", "keep entries for audit but never replay them")
    discard.add_argument("ids", type=int, nargs="+")


def _dlq(args: argparse.Namespace) -> int:
    from sambung.clock import SystemClock
    from sambung.delivery.dlq import DeadLetterFilter, DeadLetters, describe
    from sambung.delivery.redrive import FAILED, tally
    from sambung.runtime.status import table

    if getattr(args, "dry_run", False):  # it only reads: no vendor secret is needed
        args.need_env = False
    _, loaded = load(args)
    check_outlet(loaded, getattr(args, "outlet", None))

    def wanted() -> DeadLetterFilter:
        status = getattr(args, "status", None)
        return DeadLetterFilter(
            stage=args.stage,
            outlet=args.outlet,
            connector=args.connector,
            sink=args.sink,
            error_type=args.error_type,
            since=_since(args.since),
            status=None if status == "any" else (status or "open"),
            limit=args.limit,
        )

    async def act() -> int:
        store = open_store(loaded.config.store.url, base_dir=loaded.base_dir)
        await store.open()
        service = DeadLetters(store, loaded, clock=SystemClock())
        try:
            if (args.action == "list" and args.group) or (args.action == "replay" and args.dry_run):
                live, unknown = await daemon_sinks(loaded)
                planner = DeadLetters(store, loaded, clock=SystemClock(), live=lambda: live)
                if args.action == "replay" and args.ids:
                    entries = await planner.entries(args.ids)
                else:
                    entries = await planner.open_entries(wanted())
                dry_run = args.action == "replay"
                groups = await planner.plan(entries)
                print_groups(groups, args.json, dry_run=dry_run, unknown=unknown)
                return 0
            if args.action == "list":
                entries = await service.find(wanted())
                if args.json:
                    for entry in entries:
                        print(json.dumps(describe(entry)))
                    return 0
                if not entries:
                    print("no dead letters match")
                    return 0
                header = ("ID", "CREATED", "STAGE", "OUTLET", "CONNECTOR", "STATUS", "ERROR")
                lines: list[tuple[str, ...]] = [header]
                lines.extend(
                    (
                        f"#{entry.id}",
                        f"{entry.created_at:%Y-%m-%d %H:%M:%S}Z",
                        entry.stage,
                        entry.outlet,
                        entry.connector,
                        entry.status,
                        f"{entry.error_type}: {entry.error[:60]}",
                    )
                    for entry in entries
                )
                print(table(lines))
                return 0
            if args.action == "show":
                shown = await service.show(args.id)
                if shown is None:
                    print(f"no dead letter #{args.id}", file=sys.stderr)
                    return 1
                for key, value in shown.items():
                    if key not in ("payload", "delivery_attempts"):
                        print(f"{key}: {value}")
                if "delivery_attempts" in shown:
                    print("delivery attempts:")
                    print(attempts_table(await store.list_delivery_attempts(shown["outbox_id"])))
                print("payload:")
                print(shown.get("payload") or "(none)")
                return 0
            tallies: list[Any] = []
            if args.action == "replay":
                if args.all:
                    outcomes, tallies = await service.replay_grouped(
                        await service.open_entries(wanted())
                    )
                elif args.ids:
                    entries = await service.entries(args.ids)
                    outcomes = await service.replay(args.ids)
                    tallies = tally(entries, outcomes)
                else:
                    print("give dead-letter ids, or --all with filters", file=sys.stderr)
                    return EXIT_CONFIG
            else:
                outcomes = await service.discard(args.ids)
            for outcome in outcomes:
                detail = f" ({outcome.detail})" if outcome.detail else ""
                print(f"#{outcome.id}: {outcome.result}{detail}")
            if tallies:
                print()
                print(tally_table(tallies))
            return 1 if any(o.result in FAILED for o in outcomes) else 0
        finally:
            await store.close()

    return asyncio.run(act())


def _since(value: str | None) -> datetime | None:
    if not value:
        return None
    when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


# Sections of `sambung status`, in order: each prints its part from an open store. Other
# subsystems (sinks) append theirs.
STATUS_SECTIONS: list[Any] = []


def _status(args: argparse.Namespace) -> int:
    _, loaded = load(args)

    async def show() -> None:
        # The daemon's own loops first: they are known even when the store does not answer
        # (in JSON, last: one object per line, the store's sections where they always were).
        if not args.json:
            await _status_loops(loaded, args)
        store = open_store(loaded.config.store.url, base_dir=loaded.base_dir)
        await store.open()
        try:
            for section in STATUS_SECTIONS:
                await section(loaded, store, args)
        finally:
            await store.close()
        if args.json:
            await _status_loops(loaded, args)

    asyncio.run(show())
    return 0


async def _status_loops(loaded: LoadedConfig, args: argparse.Namespace) -> None:
    """The running daemon's loop problems, as its `/api/v1/status` reports them."""
    from sambung.runtime.status import daemon_loop_problems, loop_table

    found = await daemon_loop_problems(loaded)
    if args.json:
        print(json.dumps({"section": "loops", **found}))
        return
    if "error" in found:
        print(f"loops: unknown, {found['error']}")
    elif found["loop_problems"]:
        print("loops: NOT READY")
        print(loop_table(found["loop_problems"]))
    else:
        print("loops: every loop running")
    print()


async def _status_connections(loaded: LoadedConfig, store: Any, args: argparse.Namespace) -> None:
    """Per outlet and connector: what `/api/v1/status` says of it, from the same function."""
    from sambung.runtime.status import connection_status, connection_table, last_error

    connections = await connection_status(store, loaded)
    if args.json:
        for row in connections:
            print(json.dumps({"section": "connections", **row}))
        return
    if not connections:
        print("connections: (none configured)")
        return
    print(connection_table(connections))
    for row in connections:
        pause = row["pause"]
        if pause["paused"]:
            why = f": {pause['reason']}" if pause["reason"] else ""
            print(
                f"{row['outlet']} {row['connector']}: paused by {pause['actor']}"
                f" at {pause['changed_at'][:19]}{why} (sambung resume)"
            )
        error, at = last_error(row)
        if error:
            print(f"{row['outlet']} {row['connector']}: last error ({at}): {error}")


def _when(value: Any) -> str | None:
    return f"{value:%Y-%m-%d %H:%M:%S}Z" if value is not None else None


async def _status_sinks(loaded: LoadedConfig, store: Any, args: argparse.Namespace) -> None:
    """Per sink: pending, oldest pending age, retrying, failures, delivered."""
    from sambung.runtime.status import sink_status, sink_table

    sinks = await sink_status(store, loaded, store.clock.now())
    if args.json:
        for row in sinks:
            print(json.dumps({"section": "sinks", **row}, default=str))
        return
    print()
    print(sink_table(sinks) if sinks else "no sinks configured")


STATUS_SECTIONS.extend([_status_connections, _status_sinks])


async def _status_leases(loaded: LoadedConfig, store: Any, args: argparse.Namespace) -> None:
    """Which replica owns which poll loop and inbox, and until when."""
    from sambung.runtime.status import lease_status, lease_table

    leases = await lease_status(store, store.clock.now())
    if args.json:
        for row in leases:
            print(json.dumps({"section": "leases", **row}))
        return
    print()
    print(lease_table(leases) if leases else "no leases held (no loop has run yet)")


STATUS_SECTIONS.append(_status_leases)
STATUS_SECTIONS.append(status_backfills)
STATUS_SECTIONS.append(status_monitoring)
