"""What each console page shows, as plain data built from the store's and the status module's
capabilities (the same the CLI and the JSON API use); the handlers only render it."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sambung.auth.credentials import CredentialService
from sambung.auth.oauth import SINK_OUTLET
from sambung.clock import Clock
from sambung.config import Connection, LoadedConfig
from sambung.delivery.dlq import DeadLetterFilter, DeadLetters
from sambung.delivery.outbox import Dispatcher
from sambung.errors import ConfigError
from sambung.redaction import secrets
from sambung.runtime.status import connection_status, last_error, sink_status
from sambung.runtime.supervision import Loops
from sambung.store import DeadLetter, RecordQuery, Store, StoredRecord

# Dead letters read to count the groups of the list page: a month of one outlet's failures.
GROUP_WINDOW = 10_000


class ConsoleHost(Protocol):
    """What the console reads of the running daemon, at each request (a reload replaces
    `loaded`)."""

    @property
    def loaded(self) -> LoadedConfig: ...
    @property
    def store(self) -> Store: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def dispatcher(self) -> Dispatcher: ...
    @property
    def credentials(self) -> CredentialService: ...
    @property
    def loops(self) -> Loops: ...


def zones(loaded: LoadedConfig) -> dict[str, ZoneInfo]:
    """Each outlet's time zone, by outlet id."""
    return {outlet.id: ZoneInfo(outlet.timezone) for outlet in loaded.config.outlets}


def parse_time(value: str | datetime | None) -> datetime | None:
    """A time as status reports it (ISO text) or as the store keeps it."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


@dataclass
class DayTotals:
    """One outlet's business day so far: sales and refunds, and sales by payment method."""

    outlet: str
    name: str
    business_date: date
    sales: Decimal = Decimal(0)
    sales_count: int = 0
    refunds: Decimal = Decimal(0)
    refunds_count: int = 0
    by_method: dict[str, Decimal] = field(default_factory=dict)


async def overview(host: ConsoleHost, loops_problems: dict[str, str]) -> dict[str, Any]:
    """The grid of connections, the sinks, today's totals per outlet and the open alerts."""
    loaded, store, now = host.loaded, host.store, host.clock.now()
    connections = await connection_status(store, loaded)
    sinks = await sink_status(store, loaded, now, host.dispatcher)
    today_counts: Counter[tuple[str, str]] = Counter()
    totals = []
    for outlet in loaded.config.outlets:
        day = now.astimezone(ZoneInfo(outlet.timezone)).date()
        sums = DayTotals(outlet.id, outlet.name, day)
        for kind in ("transaction", "payment"):
            for record in await store.records_of_day(outlet.id, kind, day):
                today_counts[(outlet.id, record.source_system)] += 1
                if kind == "transaction":
                    _add_sale(sums, record)
        totals.append(sums)
    for connection in connections:
        connection["records_today"] = today_counts[(connection["outlet"], connection["connector"])]
        success = parse_time(connection["last_success_at"])
        connection["lag_seconds"] = (now - success).total_seconds() if success else None
        connection["error"], connection["error_at"] = last_error(connection)
    return {
        "connections": connections,
        "sinks": sinks,
        "totals": totals,
        "alerts": alerts(connections, sinks, loops_problems),
        "outlets": {o.id: o.name for o in loaded.config.outlets},
    }


def _add_sale(sums: DayTotals, record: StoredRecord) -> None:
    data = json.loads(record.payload)
    total = Decimal(str(data.get("total", "0")))
    kind = data.get("type", "sale")
    if kind == "sale":
        sums.sales += total
        sums.sales_count += 1
        method = str(data.get("payment_method") or "other")
        sums.by_method[method] = sums.by_method.get(method, Decimal(0)) + total
    elif kind == "refund":
        sums.refunds += abs(total)
        sums.refunds_count += 1


def alerts(
    connections: list[dict[str, Any]], sinks: list[dict[str, Any]], loops: dict[str, str]
) -> list[dict[str, str]]:
    """What needs the operator now: failing or disconnected connections, stuck sinks, loops."""
    found = []
    for c in connections:
        if c["state"] in ("failing", "needs_reauth"):
            found.append(
                {
                    "severity": "critical" if c["state"] == "needs_reauth" else "warning",
                    "subject": f"{c['outlet']} / {c['connector']}",
                    "message": f"{c['state']}: {c['error'] or ''}".strip(),
                    "link": f"/console/connections/{c['outlet']}/{c['connector']}",
                }
            )
    for s in sinks:
        if s["disabled"] or s["paused_until"] or s["failing"]:
            why = s["disabled"] or (
                f"paused until {s['paused_until']}" if s["paused_until"] else ""
            )
            found.append(
                {
                    "severity": "warning",
                    "subject": f"sink {s['sink']}",
                    "message": why or f"failing: {s['last_error'] or ''}",
                    "link": f"/console/sinks/{s['sink']}",
                }
            )
    for name, why in loops.items():
        found.append(
            {"severity": "critical", "subject": f"loop {name}", "message": why, "link": ""}
        )
    return list(secrets.redact_all(found))


def connection_of(loaded: LoadedConfig, outlet: str, connector: str) -> Connection | None:
    """The configured connection, if there is one."""
    for connection in loaded.connections:
        if connection.outlet.id == outlet and connection.name == connector:
            return connection
    return None


def oauth_capable(loaded: LoadedConfig, outlet: str, name: str) -> bool:
    """Whether a connection (or, with outlet `SINK_OUTLET`, a sink) connects through OAuth."""
    from sambung.auth.connect import oauth_target

    try:
        oauth_target(loaded, outlet, name)
    except ConfigError:
        return False
    return True


async def connection_page(host: ConsoleHost, connection: Connection) -> dict[str, Any]:
    """One connection: its state, masked last error, cursor, webhook URL, recent records and
    dead letters, and whether it connects through OAuth."""
    loaded, store = host.loaded, host.store
    outlet, name = connection.outlet.id, connection.name
    status = next(
        c
        for c in await connection_status(store, loaded)
        if c["outlet"] == outlet and c["connector"] == name
    )
    status["error"], status["error_at"] = last_error(status)
    credential = await store.get_credential(outlet, name)
    letters = await DeadLetters(store, loaded, clock=host.clock).find(
        DeadLetterFilter(outlet=outlet, connector=name, limit=20)
    )
    return {
        "connection": status,
        "cursor": await store.get_cursor(outlet, name),
        "webhook_url": loaded.webhook_url(connection)
        if "webhook" in connection.settings.mode
        else None,
        "oauth": oauth_capable(loaded, outlet, name),
        "credential": credential.info if credential else None,
        "records": await store.search_records(
            RecordQuery(outlet=outlet, source_system=name, limit=20)
        ),
        "dead_letters": letters,
    }


async def sink_page(host: ConsoleHost, name: str) -> dict[str, Any] | None:
    """One sink: counts and state, its newest deliveries and failed attempts with the
    receivers' answers."""
    loaded, store = host.loaded, host.store
    found = [
        s
        for s in await sink_status(store, loaded, host.clock.now(), host.dispatcher)
        if s["sink"] == name
    ]
    if not found:
        return None
    return {
        "sink": found[0],
        "recent": await store.recent_outbox(name, limit=30),
        "attempts": [row for row in await store.recent_outbox(name, limit=200) if row.last_error][
            :30
        ],
        "oauth": oauth_capable(loaded, SINK_OUTLET, name),
    }


def group_dead_letters(entries: list[DeadLetter]) -> list[tuple[str, str, int]]:
    """(stage, error class, count) of `entries`, the largest group first."""
    counts = Counter((e.stage, e.error_type) for e in entries)
    return sorted(((s, t, n) for (s, t), n in counts.items()), key=lambda g: (-g[2], g[0], g[1]))


async def dead_letters_page(host: ConsoleHost, filters: DeadLetterFilter) -> dict[str, Any]:
    """Dead letters matching `filters`, and their groups by error class with counts."""
    service = DeadLetters(host.store, host.loaded, clock=host.clock)
    window = await service.find(filters.model_copy(update={"limit": GROUP_WINDOW}))
    groups = group_dead_letters(window)
    return {
        "groups": groups,
        "entries": window[: filters.limit],
        "total": len(window),
        "filters": filters,
    }


def redrive_plan(loaded: LoadedConfig, entries: list[DeadLetter]) -> list[dict[str, Any]]:
    """What replaying each entry would do, without doing it: the dry run."""
    plan = []
    for entry in entries:
        if entry.status != "open":
            action, ok = f"nothing: the entry is {entry.status}", False
        elif entry.stage == "delivery":
            action, ok = f"deliver again to sink {entry.sink} (attempts reset)", True
        elif entry.raw_event_id is None:
            action, ok = f"cannot replay a {entry.stage} entry without its raw event", False
        elif connection_of(loaded, entry.outlet, entry.connector) is None:
            action, ok = f"no connector {entry.connector} at {entry.outlet} now", False
        else:
            what = "the CSV row" if entry.stage == "row" else "the raw body"
            action, ok = f"map {what} again with {entry.connector} as configured now", True
        plan.append({"entry": entry, "action": action, "ok": ok})
    return plan


async def record_page(host: ConsoleHost, record_id: int) -> dict[str, Any] | None:
    """One record with its revisions (each delivered payload), raw event and deliveries."""
    store = host.store
    record = await store.get_record_by_id(record_id)
    if record is None:
        return None
    outbox = await store.record_outbox(record_id)
    revisions: dict[int, str] = {record.revision: record.payload}
    for row in outbox:
        revisions.setdefault(row.revision, row.payload)
    raw = await store.get_raw_event(record.raw_event_id) if record.raw_event_id else None
    return {
        "record": record,
        "payload": _pretty(record.payload),
        "revisions": [(n, _pretty(p)) for n, p in sorted(revisions.items(), reverse=True)],
        "raw": raw,
        "raw_body": raw.body.decode("utf-8", errors="replace") if raw else None,
        "deliveries": outbox,
    }


def _pretty(payload: str) -> str:
    try:
        return json.dumps(json.loads(payload), indent=2, ensure_ascii=False)
    except ValueError:
        return payload


def by_outlet(entries: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Rows grouped by their outlet, in order."""
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in entries:
        grouped[entry["outlet"]].append(entry)
    return dict(grouped)
