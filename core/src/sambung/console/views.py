"""What each console page shows, as plain data built from the store's and the status module's
capabilities (the same the CLI and the JSON API use); the handlers only render it."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sambung.alerts.report import STATUS_DAYS, AlertFilter, GapFilter, alert_report, gap_report
from sambung.auth.credentials import CredentialService
from sambung.auth.oauth import SINK_OUTLET
from sambung.clock import Clock
from sambung.config import Connection, LoadedConfig
from sambung.delivery.dlq import DeadLetterFilter, DeadLetters
from sambung.delivery.outbox import Dispatcher
from sambung.delivery.reconciliation import (
    ReconciliationQuery,
    ReconciliationService,
    StoredReconciliation,
)
from sambung.delivery.redrive import group_entries, group_key
from sambung.errors import ConfigError, NotPolled, UnknownConnection
from sambung.intake.backfill import BackfillService
from sambung.intake.controls import ControlService
from sambung.intake.cursors import CursorService, CursorView
from sambung.redaction import secrets
from sambung.runtime.status import connection_status, last_error, sink_status
from sambung.runtime.supervision import Loops
from sambung.store import Backfill, DeliveryRow, RecordQuery, Store, StoredRecord

# Dead letters read to count the groups of the list page: a month of one outlet's failures.
GROUP_WINDOW = 10_000
# How many of a connection's recent runs its page shows.
RUNS_SHOWN = 20


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
    @property
    def backfills(self) -> BackfillService: ...
    @property
    def cursors(self) -> CursorService: ...
    @property
    def controls(self) -> ControlService: ...


def dead_letter_service(host: ConsoleHost) -> DeadLetters:
    """The dead-letter service the CLI and the API use, with the daemon's live sink view (a
    dry run says which sinks are paused or disabled)."""
    return DeadLetters(host.store, host.loaded, clock=host.clock, live=host.dispatcher.status)


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
        for kind in ("transaction", "payment", "inventory_level"):
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
    reconciled = await reconciliations(host, ReconciliationQuery())
    return {
        "connections": connections,
        "sinks": sinks,
        "totals": totals,
        # The alert engine's open episodes, and what needs a look right now.
        "alerts": await alert_report(store, AlertFilter(open=True), now),
        "attention": attention(connections, sinks, loops_problems),
        "reconciled": {r.result.outlet: r for r in reconciled},
        "outlets": {o.id: o.name for o in loaded.config.outlets},
    }


async def reconciliations(
    host: ConsoleHost, query: ReconciliationQuery
) -> list[StoredReconciliation]:
    """The daily reconciliations `query` asks for (by default each outlet's latest closed day)."""
    return await ReconciliationService(host.store, host.loaded, host.clock).find(query)


def _add_sale(sums: DayTotals, record: StoredRecord) -> None:
    # Amounts are JSON strings; parse_float keeps any written as a number exact too.
    data = json.loads(record.payload, parse_float=Decimal)
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


def attention(
    connections: list[dict[str, Any]], sinks: list[dict[str, Any]], loops: dict[str, str]
) -> list[dict[str, str]]:
    """What needs a look now, read off the grid: failing or disconnected connections, stuck
    sinks, loops (the alert engine opens its alerts on these after its own delays)."""
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
    polled = "poll" in connection.settings.mode
    # What a pause stops (`controls.pausable_connection`): polls, backfills, inbox files.
    pausable = connection.settings.enabled and (polled or "file-drop" in connection.settings.mode)
    letters = await dead_letter_service(host).find(
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
        "polled": polled,
        "cursor_view": await cursor_view(host, outlet, name) if polled else None,
        "backfills": await host.backfills.list(outlet, name) if polled else [],
        "pausable": pausable,
        "runs": await host.controls.runs(outlet, name, RUNS_SHOWN) if pausable else [],
        "pauses": await host.controls.history(outlet, name, 5) if pausable else [],
        "gaps": await gaps_of(host, outlet, name),
        "last_run_at": next(
            (
                state.last_run_at
                for state in await store.list_connection_states()
                if (state.outlet, state.connector, state.mode) == (outlet, name, "poll")
            ),
            None,
        ),
    }


async def gaps_of(host: ConsoleHost, outlet: str, connector: str) -> list[dict[str, Any]]:
    """The gap report of one connection over the last week: per business date, its records and
    how many came only by poll (no webhook delivered them)."""
    since = (host.clock.now() - timedelta(days=STATUS_DAYS)).date()
    days = await gap_report(host.store, host.loaded, GapFilter(outlet=outlet, since=since))
    return [d for d in days if d["connector"] == connector]


async def cursor_view(host: ConsoleHost, outlet: str, connector: str) -> CursorView | None:
    """A polled connection's cursor and its history of operator changes."""
    try:
        return await host.cursors.show(outlet, connector)
    except (UnknownConnection, NotPolled):
        return None


def backfill_progress(task: Backfill) -> int:
    """How far through its window a backfill got, in percent (its own cursor's place)."""
    if task.state == "done":
        return 100
    if task.position is None:
        return 0
    reached = datetime.fromisoformat(task.position.replace("Z", "+00:00"))
    window = (task.until - task.since).total_seconds()
    done = (reached - task.since).total_seconds()
    return max(0, min(100, round(100 * done / window))) if window > 0 else 100


async def sink_page(host: ConsoleHost, name: str) -> dict[str, Any] | None:
    """One sink: counts and state, its newest deliveries each with its latest attempt (the
    receiver's answer), and its failing ones."""
    loaded, store = host.loaded, host.store
    found = [
        s
        for s in await sink_status(store, loaded, host.clock.now(), host.dispatcher)
        if s["sink"] == name
    ]
    if not found:
        return None
    retrying = [row for row in await newest(store, name, "pending") if row.attempts > 0]
    return {
        "sink": found[0],
        "recent": await newest(store, name),
        "retrying": retrying,
        "dead": await newest(store, name, "dead"),
        "oauth": oauth_capable(loaded, SINK_OUTLET, name),
    }


async def newest(store: Store, sink: str, status: str | None = None) -> list[DeliveryRow]:
    """A sink's newest deliveries (of one status) with their latest attempts.

    The ids come from `recent_outbox`, which reads backwards along the outbox's primary key
    and stops at the limit; a sink's whole history sorted by id (`list_deliveries` on SQLite)
    cost 60 ms for a month of one outlet.
    """
    rows = await store.recent_outbox(sink, status=status, limit=30)
    found = [await store.get_delivery(row.id) for row in rows]
    return [row for row in found if row is not None]


async def dead_letters_page(
    host: ConsoleHost,
    filters: DeadLetterFilter,
    *,
    error_type: str | None = None,
    target: str | None = None,
) -> dict[str, Any]:
    """Dead letters matching `filters` grouped as redrive groups them, with counts, and the
    newest entries of one group (error class, and connector or sink) when one is chosen."""
    window = await dead_letter_service(host).find(
        filters.model_copy(update={"limit": GROUP_WINDOW})
    )
    groups = [(key, len(members)) for key, members in group_entries(window).items()]
    chosen = [
        entry
        for entry in window
        if error_type in (None, entry.error_type) and target in (None, group_key(entry)[1])
    ]
    return {
        "groups": groups,
        "entries": chosen[: filters.limit],
        "total": len(window),
        "filters": filters,
    }


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
