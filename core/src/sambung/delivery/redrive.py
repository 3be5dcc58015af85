"""Redrive: open dead letters grouped by what failed, and what replaying them would do now.

`plan_redrive` groups open entries by (stage, connector or sink, error class) and, for every
entry, works out what a replay would do *now* without writing anything: an ingest or row entry
is mapped again with the plugin installed now (pure: its records are not committed); a delivery
entry names its sink, whether that sink is paused or disabled in the running daemon, and for an
accounting sink the invoice number it would create or update (the sink's own pure mapping,
no call to the vendor). `sambung dlq list --group`, `sambung dlq replay --dry-run` and the
admin API (`?group=true`, `"dry_run": true`) show these groups; a real replay reports per group
with the same keys.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from sambung.config import LoadedConfig
from sambung.errors import DeliveryRejected
from sambung.models import Record
from sambung.store import DeadLetter, DeliveryAttemptStore

from .accounting import AccountingSinkSettings, draft_of
from .sinks import Delivery

RemapResult = Literal["mapped", "still_failing", "unsupported", "not_found"]
Verdict = Literal["would_replay", "would_requeue", "still_failing", "held", "unsupported"]
# What the running daemon says of each sink (`Dispatcher.status()`): disabled, paused_until, …
LiveSinks = Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class Remapped:
    """What mapping a kept body again with the connector configured now gives (no write)."""

    result: RemapResult
    detail: str | None = None
    records: tuple[Record, ...] = ()


@dataclass(frozen=True)
class EntryPlan:
    """What replaying one entry would do now."""

    id: int
    verdict: Verdict
    detail: str | None = None
    records: int = 0  # records an ingest or row entry would map to
    invoice: str | None = None  # the invoice number an accounting sink would post
    invoice_action: Literal["create", "update"] | None = None


GroupKey = tuple[str, str, str]


@dataclass(frozen=True)
class RedriveGroup:
    """Open dead letters of one stage, connector or sink, and error class, with what a replay
    of each would do now."""

    stage: str
    target: str  # the connector (ingest, row stage) or the sink (delivery stage)
    error_type: str
    outlets: tuple[str, ...]
    oldest: datetime
    newest: datetime
    error: str  # the newest entry's error, for a first look
    plans: tuple[EntryPlan, ...] = field(default=())

    @property
    def key(self) -> GroupKey:
        """(stage, target, error_type): how groups are told apart, in plans and replays."""
        return (self.stage, self.target, self.error_type)

    @property
    def ids(self) -> tuple[int, ...]:
        """The group's entries, oldest first."""
        return tuple(plan.id for plan in self.plans)

    def verdicts(self) -> dict[str, int]:
        """How many entries would go which way."""
        return dict(Counter(plan.verdict for plan in self.plans))

    def summary(self) -> str:
        """One line: what a replay of this group would do now."""
        parts = []
        for verdict, count in sorted(self.verdicts().items(), key=lambda v: _ORDER[v[0]]):
            plans = [p for p in self.plans if p.verdict == verdict]
            parts.append(_say(verdict, count, plans))
        return "; ".join(parts)

    def describe(self) -> dict[str, Any]:
        """The group as JSON-ready data."""
        return {
            "stage": self.stage,
            "target": self.target,
            "error_type": self.error_type,
            "count": len(self.plans),
            "outlets": list(self.outlets),
            "oldest": self.oldest.isoformat(),
            "newest": self.newest.isoformat(),
            "error": self.error,
            "ids": list(self.ids),
            "verdicts": self.verdicts(),
            "summary": self.summary(),
            "entries": [
                {k: v for k, v in plan.__dict__.items() if v is not None} for plan in self.plans
            ],
        }


_ORDER = {"would_replay": 0, "would_requeue": 1, "held": 2, "still_failing": 3, "unsupported": 4}


def _say(verdict: str, count: int, plans: Sequence[EntryPlan]) -> str:
    first = plans[0].detail or ""
    if verdict == "would_replay":
        records = sum(p.records for p in plans)
        return f"{count} would map OK ({records} record{'s' if records != 1 else ''})"
    if verdict == "would_requeue":
        invoices = [p for p in plans if p.invoice]
        if invoices:
            shown = ", ".join(f"{p.invoice} ({p.invoice_action})" for p in invoices[:5])
            more = f" and {len(invoices) - 5} more" if len(invoices) > 5 else ""
            return f"{count} would post: {shown}{more}"
        return f"{count} would be requeued ({first})" if first else f"{count} would be requeued"
    if verdict == "held":
        return f"{count} would wait: {first}"
    if verdict == "still_failing":
        return f"{count} still fail{'s' if count == 1 else ''}: {first}"
    return f"{count} cannot be replayed: {first}"


class RedriveSource(Protocol):
    """What planning reads: the store's outbox rows, the configuration, and a pure remap."""

    @property
    def store(self) -> DeliveryAttemptStore: ...
    @property
    def loaded(self) -> LoadedConfig: ...

    def remap(self, entry: DeadLetter) -> Awaitable[Remapped]:
        """Map an ingest or row entry again with the connector configured now; no write."""
        ...


def group_key(entry: DeadLetter) -> GroupKey:
    """The group an entry belongs to: (stage, connector or sink, error class)."""
    target = entry.sink if entry.stage == "delivery" and entry.sink else entry.connector
    return (entry.stage, target, entry.error_type)


def group_entries(entries: Iterable[DeadLetter]) -> dict[GroupKey, list[DeadLetter]]:
    """Entries by group, each group oldest first; groups largest first, then by key."""
    groups: dict[GroupKey, list[DeadLetter]] = {}
    for entry in sorted(entries, key=lambda e: e.id):
        groups.setdefault(group_key(entry), []).append(entry)
    return dict(sorted(groups.items(), key=lambda item: (-len(item[1]), item[0])))


async def plan_redrive(
    source: RedriveSource,
    entries: Sequence[DeadLetter],
    *,
    live: LiveSinks | None = None,
) -> list[RedriveGroup]:
    """`entries` grouped, each with what a replay would do now. Writes nothing."""
    groups = []
    for (stage, target, error_type), members in group_entries(entries).items():
        plans = [await plan_entry(source, entry, live or {}) for entry in members]
        groups.append(
            RedriveGroup(
                stage=stage,
                target=target,
                error_type=error_type,
                outlets=tuple(sorted({e.outlet for e in members})),
                oldest=members[0].created_at,
                newest=members[-1].created_at,
                error=members[-1].error,
                plans=tuple(plans),
            )
        )
    return groups


async def plan_entry(source: RedriveSource, entry: DeadLetter, live: LiveSinks) -> EntryPlan:
    """What replaying `entry` would do now; writes nothing."""
    if entry.stage == "delivery":
        return await _plan_delivery(source, entry, live)
    remapped = await source.remap(entry)
    if remapped.result == "mapped":
        return EntryPlan(entry.id, "would_replay", remapped.detail, records=len(remapped.records))
    if remapped.result == "still_failing":
        return EntryPlan(entry.id, "still_failing", remapped.detail)
    return EntryPlan(entry.id, "unsupported", remapped.detail)


async def _plan_delivery(source: RedriveSource, entry: DeadLetter, live: LiveSinks) -> EntryPlan:
    sink = entry.sink
    config = source.loaded.config.sinks.get(sink) if sink else None
    if sink is None or config is None or entry.outbox_id is None:
        return EntryPlan(
            entry.id, "held", f"sink {sink} is not configured now: nothing would deliver it"
        )
    state = live.get(sink, {})
    if state.get("disabled"):
        return EntryPlan(
            entry.id,
            "held",
            f"sink {sink} is disabled ({state['disabled']}): restart sambung once it is fixed",
        )
    paused = state.get("paused_until")
    waits = f"sink {sink} is paused until {_iso(paused)}" if paused else None
    settings = source.loaded.sink_settings.get(sink)
    if not isinstance(settings, AccountingSinkSettings):
        return EntryPlan(entry.id, "would_requeue", waits or f"to sink {sink} ({config.type})")
    row = await source.store.get_delivery(entry.outbox_id)
    if row is None:
        return EntryPlan(entry.id, "unsupported", "its outbox row is gone")
    delivery = Delivery(
        id="",
        outbox_id=row.id,
        sink=sink,
        outlet=row.outlet,
        source_system=row.source_system,
        kind=row.kind,
        record_id=row.record_id,
        revision=row.revision,
        payload=entry.payload or "",
        attempt=1,
        created_at=row.created_at,
    )
    try:
        draft = draft_of(delivery, settings.invoice_prefix)
        settings.check_invoice(draft)
    except DeliveryRejected as err:
        return EntryPlan(entry.id, "still_failing", str(err))
    # The first revision of a record creates its invoice; a later one updates it in place
    # (a sink finds the invoice by its number when it posts).
    action: Literal["create", "update"] = "update" if row.revision > 1 else "create"
    return EntryPlan(entry.id, "would_requeue", waits, invoice=draft.number, invoice_action=action)


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


# Replay results that leave an entry as it was, for a reason to look at.
FAILED = frozenset({"still_failing", "not_found", "unsupported"})


class Outcome(Protocol):
    """What replaying one entry did (`dlq.ReplayOutcome`), as a tally reads it."""

    @property
    def id(self) -> int: ...
    @property
    def result(self) -> str: ...
    @property
    def detail(self) -> str | None: ...


@dataclass
class ReplayTally:
    """What a real replay of one group did: entries per outcome (`requeued`, `replayed`,
    `still_failing`, …) and the first detail of a failing one."""

    stage: str
    target: str
    error_type: str
    results: Counter[str] = field(default_factory=Counter)
    detail: str | None = None

    def describe(self) -> dict[str, Any]:
        """The tally as JSON-ready data."""
        return {
            "stage": self.stage,
            "target": self.target,
            "error_type": self.error_type,
            "results": dict(self.results),
            "detail": self.detail,
        }


def tally(entries: Iterable[DeadLetter], outcomes: Iterable[Outcome]) -> list[ReplayTally]:
    """Per group of `entries`, what the replay `outcomes` (id, result, detail) came to."""
    found = {outcome.id: outcome for outcome in outcomes}
    tallies = []
    for key, members in group_entries(entries).items():
        counted = ReplayTally(*key)
        for entry in members:
            outcome = found.get(entry.id)
            if outcome is None:
                continue
            counted.results[outcome.result] += 1
            if outcome.result in FAILED and counted.detail is None:
                counted.detail = outcome.detail
        tallies.append(counted)
    return tallies
