"""What `GET /api/v1/status` and `sambung status` report: connections, sinks, leases, loops.

Each part is its own function over the store and the configuration, so other subsystems (the
polling loops' state, for one) add their part beside these without touching them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from sambung.config import LoadedConfig
from sambung.connectors import Mode
from sambung.intake.controls import describe_control
from sambung.redaction import secrets
from sambung.store import ConnectionStore, ControlStore, LeaseStore, OutboxStore

if TYPE_CHECKING:
    from sambung.delivery.outbox import Dispatcher

    from .supervision import Loops


def loop_status(loops: Loops) -> dict[str, str]:
    """Loop name → why it keeps the daemon from being ready; what `/readyz` and status name.
    Each reason quotes the exception that crashed the loop, so it is masked like every error
    shown."""
    return dict(secrets.redact_all(loops.problems()))


async def daemon_loop_problems(loaded: LoadedConfig, *, timeout: float = 5.0) -> dict[str, Any]:
    """The running daemon's loop problems as its `/api/v1/status` reports them, read from
    `/api/v1/loops` (the same function, without the store): `sambung status` shows the
    daemon's own view, not a copy. {"loop_problems": …} or {"error": why}."""
    from .adminclient import DaemonUnreachable, admin_target, ask_daemon

    try:
        status, body = await ask_daemon(loaded, "GET", "/api/v1/loops", timeout=timeout)
    except DaemonUnreachable as err:
        return {"error": str(err)}
    if status != 200:
        return {"error": f"the daemon answered {status} at {admin_target(loaded)[0]}/api/v1/loops"}
    return {"loop_problems": dict(body.get("loop_problems") or {})}


def loop_table(problems: dict[str, str]) -> str:
    """The loops part of `sambung status`, as a text table."""
    rows: list[tuple[str, ...]] = [("LOOP", "PROBLEM")]
    rows.extend((name, why) for name, why in sorted(problems.items()))
    return table(rows)


async def sink_status(
    store: OutboxStore, loaded: LoadedConfig, now: datetime, dispatcher: Dispatcher | None = None
) -> list[dict[str, Any]]:
    """Per configured sink: pending, oldest pending age, retrying, dead, delivered, health."""
    stats = await store.outbox_stats()
    live = dispatcher.status() if dispatcher is not None else {}
    sinks = []
    for name, config in loaded.config.sinks.items():
        found = stats.get(name)
        oldest = found.oldest_pending_at if found else None
        state = live.get(name, {})
        sinks.append(
            {
                "sink": name,
                "type": config.type,
                "pending": found.pending if found else 0,
                "oldest_pending_age_seconds": (
                    round(max(0.0, (now - oldest).total_seconds()), 3) if oldest else None
                ),
                "retrying": found.retrying if found else 0,
                "failures": found.dead if found else 0,
                "delivered": found.delivered if found else 0,
                "disabled": state.get("disabled"),
                "paused_until": _iso(state.get("paused_until")),
                "failing": state.get("failing"),
                "last_success_at": _iso(state.get("last_success_at")),
                "last_error": state.get("last_error"),
            }
        )
    return list(secrets.redact_all(sinks))


class StatusStore(ConnectionStore, ControlStore, Protocol):
    """What the connections part reads: their states and activity, and operator pauses."""


async def connection_status(store: StatusStore, loaded: LoadedConfig) -> list[dict[str, Any]]:
    """Per outlet and connector: mode, state (ok, failing, needs_reauth, paused, not_yet_run),
    who paused it, when and why, last success, last error, counts, and for polled connections
    their cursor and records fetched."""
    activity = await store.connection_activity()
    controls = {(c.outlet, c.connector): c for c in await store.list_controls()}
    polled = {
        (state.outlet, state.connector): state
        for state in await store.list_connection_states()
        if state.mode == "poll"
    }
    connections = []
    for connection in loaded.connections:
        key = (connection.outlet.id, connection.name)
        found = activity.get(key, {})
        poll = polled.get(key)
        control = controls.get(key)
        if not connection.settings.enabled or (control is not None and control.paused):
            state = "paused"
        elif poll is not None:
            state = poll.state.value
        else:
            # A polled connection without a poll state has not finished a run yet: "ok" would
            # claim a success nobody saw. Webhooks and files simply wait for their senders.
            state = "not_yet_run" if Mode.POLL in connection.settings.mode else "ok"
        last_success = max(
            (t for t in (found.get("last_success_at"), poll and poll.last_success_at) if t),
            default=None,
        )
        connections.append(
            {
                "outlet": connection.outlet.id,
                "connector": connection.name,
                "mode": sorted(connection.settings.mode),
                "state": state,
                # An operator's pause (`sambung pause`); `enabled: false` in the YAML is not one.
                "pause": describe_control(control if control and control.paused else None),
                "last_success_at": _iso(last_success),
                "last_error_at": _iso(found.get("last_error_at")),
                "last_error": found.get("last_error"),
                "records": found.get("records", 0),
                "open_dead_letters": found.get("open_dead_letters", 0),
                "poll": None
                if poll is None
                else {
                    "state": poll.state.value,
                    "cursor": poll.cursor,
                    "last_success_at": _iso(poll.last_success_at),
                    "last_error_at": _iso(poll.last_error_at),
                    "last_error": poll.last_error,
                    "records_fetched": poll.records_fetched,
                },
            }
        )
    return list(secrets.redact_all(connections))


async def lease_status(store: LeaseStore, now: datetime) -> list[dict[str, Any]]:
    """Which replica owns which loop (`poll:…`, `filedrop:…`) and which replicas are alive
    (`replica:…`), with each lease's expiry; an expired lease is free for any replica."""
    return [
        {
            "lease": lease.name,
            "owner": lease.owner,
            "live": lease.expires_at > now,
            "expires_in_seconds": round((lease.expires_at - now).total_seconds(), 3),
            "expires_at": _iso(lease.expires_at),
            "acquired_at": _iso(lease.acquired_at),
        }
        for lease in await store.list_leases()
    ]


def lease_table(leases: list[dict[str, Any]]) -> str:
    """The leases part of `sambung status`, as a text table."""
    rows: list[tuple[str, ...]] = [("LEASE", "OWNER", "STATE", "EXPIRES AT")]
    for lease in leases:
        state = f"live {lease['expires_in_seconds']:.0f}s" if lease["live"] else "expired"
        rows.append((lease["lease"], lease["owner"], state, (lease["expires_at"] or "-")[:19]))
    return table(rows)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def sink_table(sinks: list[dict[str, Any]]) -> str:
    """The sinks part of `sambung status`, as a text table."""
    header = ("SINK", "TYPE", "PENDING", "OLDEST", "RETRYING", "FAILED", "DELIVERED", "STATE")
    rows: list[tuple[str, ...]] = [header]
    for sink in sinks:
        pending_age = sink["oldest_pending_age_seconds"]
        state = "disabled" if sink["disabled"] else ("failing" if sink["failing"] else "ok")
        if sink.get("paused_until"):
            state = f"paused until {sink['paused_until'][:16]}"
        elif sink["failing"] is None and not sink["disabled"]:
            state = "-"  # read from the store alone: the daemon's live view is not known
        rows.append(
            (
                sink["sink"],
                sink["type"],
                str(sink["pending"]),
                age(pending_age),
                str(sink["retrying"]),
                str(sink["failures"]),
                str(sink["delivered"]),
                state,
            )
        )
    return table(rows)


def connection_table(connections: list[dict[str, Any]]) -> str:
    """The connections part of `sambung status`, as a text table."""
    header = (
        "OUTLET",
        "CONNECTOR",
        "MODE",
        "STATE",
        "RECORDS",
        "DLQ",
        "LAST SUCCESS",
        "LAST ERROR",
    )
    rows: list[tuple[str, ...]] = [header]
    for c in connections:
        rows.append(
            (
                c["outlet"],
                c["connector"],
                ",".join(c["mode"]),
                c["state"],
                str(c["records"]),
                str(c["open_dead_letters"]),
                (c["last_success_at"] or "-")[:19],
                (last_error(c)[0] or "-")[:40],
            )
        )
    return table(rows)


def last_error(connection: dict[str, Any]) -> tuple[str | None, str | None]:
    """A connection's newest error and when, of its intake and of its polling."""
    poll = connection.get("poll") or {}
    found = [
        (at, error)
        for at, error in (
            (connection["last_error_at"], connection["last_error"]),
            (poll.get("last_error_at"), poll.get("last_error")),
        )
        if error
    ]
    if not found:
        return None, None
    at, error = max(found, key=lambda pair: pair[0] or "")
    return error, at


def age(seconds: float | None) -> str:
    """A duration as the status tables and the console show it: 45s, 12m, 3.5h."""
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def table(rows: Sequence[Sequence[str]]) -> str:
    """Rows as aligned text columns, the first row the column headers."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
