"""The alert rules: small evaluators, each finding the conditions that hold right now.

A rule is an async function of a `RuleContext` returning {subject: message} for every
condition it finds now; `@rule("name")` adds it to `RULES`. It only says what holds: whether
that opens an alert, keeps one open or recovers one is decided by the store, once across
replicas (`AlertStore.apply_alert_conditions`). Messages are masked when they become
`AlertCondition`s, but a rule should not put a secret in one to begin with.

Adding a rule is one decorated function:

    @rule("reconciliation_differs")
    async def reconciliation_differs(ctx: RuleContext) -> Found:
        return {f"{r.outlet}/{r.day}": f"differs by {r.difference}" for r in await ...}
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog

from sambung.clock import FixedClock
from sambung.config import AlertSettings, LoadedConfig
from sambung.connectors import Mode
from sambung.delivery.reconciliation import ReconciliationService
from sambung.store import AlertCondition, ConnectionStatus, DeadLetterQuery, Store

log = structlog.get_logger(__name__)

# What a rule finds: subject (what the alert is about: `kemang/moka`, a sink's name) → message.
Found = dict[str, str]
Rule = Callable[["RuleContext"], Awaitable[Found]]

RULES: dict[str, Rule] = {}
# The gap rule looks at records of business dates this many days before its window, and later.
GAP_DAYS = 2


def rule(name: str) -> Callable[[Rule], Rule]:
    """Register the decorated evaluator under `name` (the alert's `rule`)."""

    def register(evaluator: Rule) -> Rule:
        if name in RULES:
            raise ValueError(f"an alert rule named {name!r} is already registered")
        RULES[name] = evaluator
        return evaluator

    return register


@dataclass
class RuleContext:
    """What a rule reads: the store, the configuration, the time, and live daemon state."""

    store: Store
    loaded: LoadedConfig
    now: datetime
    # The dispatcher's live view per sink (`Dispatcher.status()`): disabled, paused_until, ...
    sinks: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # When this evaluator first saw a condition that needs to last (subject key → time);
    # kept between checks by the caller.
    first_seen: dict[str, datetime] = field(default_factory=dict)

    @property
    def settings(self) -> AlertSettings:
        """The `alerts:` section."""
        return self.loaded.config.alerts

    def held_since(self, key: str, holds: bool) -> datetime | None:
        """Since when condition `key` has held on consecutive checks (None: it does not)."""
        if not holds:
            self.first_seen.pop(key, None)
            return None
        return self.first_seen.setdefault(key, self.now)


async def evaluate(
    ctx: RuleContext, rules: Mapping[str, Rule] | None = None
) -> tuple[list[str], list[AlertCondition]]:
    """Run every rule; the names of those that ran and what they found. A rule that fails is
    logged and left out, so its open alerts stay open rather than recover by mistake."""
    ran: list[str] = []
    found: list[AlertCondition] = []
    for name, evaluator in (RULES if rules is None else rules).items():
        try:
            conditions = await evaluator(ctx)
        except Exception as err:
            log.warning("alerts.rule_failed", rule=name, error=f"{type(err).__name__}: {err}")
            continue
        ran.append(name)
        found.extend(AlertCondition(name, s, m) for s, m in sorted(conditions.items()))
    return ran, found


def _configured(ctx: RuleContext) -> set[tuple[str, str]]:
    return {(c.outlet.id, c.name) for c in ctx.loaded.connections if c.settings.enabled}


@rule("connection_needs_reauth")
async def connection_needs_reauth(ctx: RuleContext) -> Found:
    """A connection whose vendor refused its credentials: polling stopped until reconnected."""
    configured = _configured(ctx)
    return {
        f"{s.outlet}/{s.connector}": (
            f"{s.outlet}/{s.connector} needs new credentials ({s.last_error or 'refused'});"
            f" polling stopped: sambung connect {s.outlet} {s.connector}"
        )
        for s in await ctx.store.list_connection_states()
        if s.state is ConnectionStatus.NEEDS_REAUTH and (s.outlet, s.connector) in configured
    }


@rule("connection_failing")
async def connection_failing(ctx: RuleContext) -> Found:
    """A polled connection failing for longer than `connection_failing_minutes` (not one an
    operator paused: it is not polled, so its last failure is old news)."""
    limit = timedelta(minutes=ctx.settings.connection_failing_minutes)
    paused = {(c.outlet, c.connector) for c in await ctx.store.list_controls() if c.paused}
    configured = _configured(ctx) - paused
    found: Found = {}
    for s in await ctx.store.list_connection_states():
        subject = f"{s.outlet}/{s.connector}"
        failing = s.state is ConnectionStatus.FAILING and (s.outlet, s.connector) in configured
        seen = ctx.held_since(f"connection_failing:{subject}", failing)
        if seen is None:
            continue
        # Failing since the last success, or (none, or before this daemon saw it fail) since
        # this evaluator first saw it failing: a restart never alerts on an old failure at once.
        since = max(seen, s.last_success_at) if s.last_success_at else seen
        if ctx.now - since >= limit:
            found[subject] = (
                f"{subject} has failed for {_minutes(ctx.now - since)}: {s.last_error or '?'}"
            )
    return found


@rule("sink_paused")
async def sink_paused(ctx: RuleContext) -> Found:
    """A sink the dispatcher holds back (a quota used up, OAuth credentials refused)."""
    found: Found = {}
    for name, state in ctx.sinks.items():
        until = state.get("paused_until")
        if isinstance(until, datetime) and until > ctx.now:
            reason = state.get("last_error") or "paused"
            found[name] = f"sink {name} is paused until {until.isoformat()}: {reason}"
    return found


@rule("sink_disabled")
async def sink_disabled(ctx: RuleContext) -> Found:
    """A sink whose receiver asked to stop (HTTP 410): nothing is sent until a restart."""
    return {
        name: f"sink {name} is disabled: {state['disabled']}"
        for name, state in ctx.sinks.items()
        if state.get("disabled")
    }


@rule("sink_pending")
async def sink_pending(ctx: RuleContext) -> Found:
    """A sink whose oldest pending row waits longer than `sink_pending_minutes`."""
    limit = timedelta(minutes=ctx.settings.sink_pending_minutes)
    found: Found = {}
    stats = await ctx.store.outbox_stats()
    for name in ctx.loaded.config.sinks:
        oldest = stats[name].oldest_pending_at if name in stats else None
        if oldest is not None and ctx.now - oldest >= limit:
            pending = stats[name].pending
            found[name] = (
                f"sink {name}: {pending} rows pending, the oldest for {_minutes(ctx.now - oldest)}"
            )
    return found


@rule("dead_letters")
async def dead_letters(ctx: RuleContext) -> Found:
    """More than `dead_letters_per_hour` dead letters in the last hour."""
    limit = ctx.settings.dead_letters_per_hour
    recent = await ctx.store.find_dead_letters(
        DeadLetterQuery(since=ctx.now - timedelta(hours=1), status=None, limit=limit + 1)
    )
    if len(recent) <= limit:
        return {}
    return {"dead_letters": f"more than {limit} dead letters in the last hour: sambung dlq list"}


def gap_connections(loaded: LoadedConfig) -> set[tuple[str, str]]:
    """The (outlet, connector) pairs the gap report covers: those taking webhooks and polling."""
    both = {Mode.WEBHOOK, Mode.POLL}
    return {
        (c.outlet.id, c.name)
        for c in loaded.connections
        if c.settings.enabled and both <= c.settings.mode
    }


@rule("webhook_gaps")
async def webhook_gaps(ctx: RuleContext) -> Found:
    """Records a poll stored in the recent window that no webhook delivered (lost webhooks)."""
    grace = timedelta(minutes=ctx.settings.gap_grace_minutes)
    window = timedelta(minutes=ctx.settings.gap_window_minutes)
    end = ctx.now - grace
    # Only the last few business dates: a poll reaching further back (a first run's lookback,
    # a backfill) brings what predates the webhooks, which is no loss; and the query stays small.
    since = (end - window - timedelta(days=GAP_DAYS)).date()
    days = await ctx.store.webhook_gaps(
        gap_connections(ctx.loaded), since=since, stored_between=(end - window, end)
    )
    lost: dict[str, list[str]] = {}
    totals: dict[str, list[int]] = {}
    for day in days:
        if day.poll_only:
            subject = f"{day.outlet}/{day.connector}"
            lost.setdefault(subject, []).append(f"{day.business_date}: {day.poll_only}")
            counts = totals.setdefault(subject, [0, 0])
            counts[0] += day.poll_only
            counts[1] += day.total
    return {
        subject: (
            f"{subject}: {totals[subject][0]} of {totals[subject][1]} records stored in the last"
            f" {_minutes(window)} came only by poll, never by webhook ({', '.join(per_day)})"
        )
        for subject, per_day in lost.items()
    }


@rule("reconciliation_differs")
async def reconciliation_differs(ctx: RuleContext) -> Found:
    """A closed day whose POS sales and gateway payments differ by more than
    `reconciliation.tolerance`, for `reconciliation.alert_after_minutes` on end."""
    service = ReconciliationService(ctx.store, ctx.loaded, FixedClock(ctx.now))
    limit = timedelta(minutes=ctx.loaded.config.reconciliation.alert_after_minutes)
    differing = {f"{r.outlet}/{r.business_date}": r for r in await service.differing(now=ctx.now)}
    found: Found = {}
    for key in [k for k in ctx.first_seen if k.startswith("reconciliation_differs:")]:
        if key.removeprefix("reconciliation_differs:") not in differing:
            ctx.held_since(key, False)  # matched again: a new difference counts afresh
    for subject, r in differing.items():
        since = ctx.held_since(f"reconciliation_differs:{subject}", True)
        if since is not None and ctx.now - since >= limit:
            found[subject] = (
                f"{r.outlet} {r.business_date}: POS sales and payments differ by"
                f" {r.difference:,} ({len(r.unmatched_sales)} sales without payment,"
                f" {len(r.unmatched_payments)} payments without sale):"
                f" sambung reconcile --outlet {r.outlet} --date {r.business_date}"
            )
    return found


def _minutes(span: timedelta) -> str:
    seconds = span.total_seconds()
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"
