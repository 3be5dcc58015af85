"""Daily summaries: one record per outlet and business date, summing up that day's transactions.

Accounting sinks that post one invoice a day (`post: daily_summary`) receive these instead of
single transactions. A loop looks, every `summaries.every_seconds`, for business dates that have
just closed (the outlet's local time passed `summaries.after`) and for closed dates whose
transactions changed since its last look (a late sale, a refund); it sums each such date up from
the store and ingests the summary like any record, under the external id `{outlet}:{date}`.
The store's upsert then does the rest: an unchanged summary is a no-op (nothing new is posted),
a changed one is a new revision with its own outbox row, posted over the same invoice.

How transactions count: a sale counts in; a refund counts against (negative quantities and
amounts, on the refund's own business date, since that is when the money went back); a void
counts nowhere, and the sale it names (`reverses_external_id`) is dropped from that day too, or,
when that sale is on another day, the void is counted against like a refund.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import structlog

from sambung.clock import Clock
from sambung.config import (
    LoadedConfig,
    OutletConfig,
    ReconciliationSettings,
    SummarySettings,
    closing_offset,
)
from sambung.intake.polling import from_cursor, to_cursor
from sambung.models import DailySummary, Reconciliation, SummaryLine, Transaction, TransactionType
from sambung.runtime import supervision
from sambung.store import CursorUpdate, IngestRequest, IngestResult, IngestStore, Outcome

log = structlog.get_logger(__name__)

# The source_system of summaries: core made them, no vendor did.
SOURCE_SYSTEM = "sambung"
# The cursor (in the store's cursors table) holding how far changed transactions were read.
CURSOR = "sambung.summaries"
_ZERO = Decimal(0)


def summary_id(outlet: str, business_date: date, currency: str = "IDR") -> str:
    """The external id of an outlet's summary of a day: `{outlet}:{date}` (and the currency
    when it is not rupiah)."""
    base = f"{outlet}:{business_date.isoformat()}"
    return base if currency == "IDR" else f"{base}:{currency}"


def summarise(
    outlet: str, business_date: date, transactions: Iterable[Transaction]
) -> list[DailySummary]:
    """The summaries of one outlet's day (one per currency; none when there was no sale)."""
    by_currency: dict[str, list[Transaction]] = {}
    for transaction in transactions:
        by_currency.setdefault(transaction.currency, []).append(transaction)
    return [
        _summary(outlet, business_date, currency, group)
        for currency, group in sorted(by_currency.items())
    ]


def _summary(
    outlet: str, business_date: date, currency: str, transactions: Sequence[Transaction]
) -> DailySummary:
    voided, sale_keys = _voids_and_sales(transactions)
    totals = dict.fromkeys(
        ("subtotal", "discount", "service_charge", "tax", "rounding", "total"), _ZERO
    )
    lines: dict[tuple[str, Decimal], list[Decimal]] = {}
    names: dict[tuple[str, Decimal], tuple[str | None, str]] = {}
    counts = {"sale": 0, "refund": 0, "void": 0}
    for sign, t in counted(transactions):
        counts[t.type.value] += 1
        if sign == 0:
            continue
        for name in totals:
            totals[name] += sign * getattr(t, name)
        for item in t.items:
            # One line per product and unit price: quantity x price stays exact, which an
            # average price over a day of price changes would not be.
            key = (item.sku or f"name:{item.name}", item.unit_price)
            names.setdefault(key, (item.sku, item.name))
            sums = lines.setdefault(key, [_ZERO, _ZERO, _ZERO])
            sums[0] += sign * item.quantity
            sums[1] += sign * item.discount
            sums[2] += sign * item.total
    summary_lines = tuple(
        SummaryLine(
            sku=names[key][0],
            name=names[key][1],
            unit_price=key[1],
            quantity=quantity,
            discount=discount,
            total=total,
        )
        for key, (quantity, discount, total) in sorted(lines.items(), key=lambda kv: kv[0])
        if quantity or total  # fully refunded: nothing left to post
    )
    return DailySummary(
        outlet=outlet,
        source_system=SOURCE_SYSTEM,
        external_id=summary_id(outlet, business_date, currency),
        business_date=business_date,
        currency=currency,
        transactions=counts["sale"] - len(voided & sale_keys),
        refunds=counts["refund"],
        voids=counts["void"],
        lines=summary_lines,
        source_ids=tuple(sorted(f"{t.source_system}:{t.external_id}" for t in transactions)),
        **totals,
    )


def _voids_and_sales(
    transactions: Iterable[Transaction],
) -> tuple[set[tuple[str, str | None]], set[tuple[str, str | None]]]:
    """The sales a void of the day names, and the day's sales, each as (source, external id)."""
    voided: set[tuple[str, str | None]] = set()
    sales: set[tuple[str, str | None]] = set()
    for t in transactions:
        if t.type is TransactionType.VOID and t.reverses_external_id:
            voided.add((t.source_system, t.reverses_external_id))
        elif t.type is TransactionType.SALE:
            sales.add((t.source_system, t.external_id))
    return voided, sales


def counted(transactions: Sequence[Transaction]) -> list[tuple[int, Transaction]]:
    """Each of a day's transactions with how it counts (+1, -1, 0), in time order, as daily
    summaries count it (see the module's docstring)."""
    voided, sales = _voids_and_sales(transactions)
    ordered = sorted(transactions, key=lambda t: (t.occurred_at, t.external_id))
    return [(_sign(t, voided, sales), t) for t in ordered]


def _sign(
    transaction: Transaction,
    voided: set[tuple[str, str | None]],
    sales: set[tuple[str, str | None]],
) -> int:
    """+1 counts in, -1 counts against, 0 counts nowhere (see the module's docstring)."""
    key = (transaction.source_system, transaction.external_id)
    if transaction.type is TransactionType.SALE:
        return 0 if key in voided else 1
    if transaction.type is TransactionType.REFUND:
        return -1
    reversed_key = (transaction.source_system, transaction.reverses_external_id)
    if transaction.reverses_external_id and reversed_key not in sales:
        return -1  # the voided sale is on another day, already summed up there
    return 0


def latest_closed(now: datetime, tz: ZoneInfo, after: timedelta) -> date:
    """The newest business date whose local day, plus `after`, has passed at `now`."""
    return (now.astimezone(tz).replace(tzinfo=None) - after).date()


@dataclass(frozen=True)
class DueDates:
    """An outlet's business dates to (re)compute now, and the cursor to commit with them."""

    outlet: str
    dates: list[date]
    cursor: CursorUpdate | None
    closed: date  # the newest closed date, looked at once these are stored


class ClosedDays:
    """Finds an outlet's business dates that have just closed, and closed dates whose records
    of `kinds` changed since the last look (a late sale, a late payment, a backfill)."""

    def __init__(
        self,
        store: IngestStore,
        settings: SummarySettings,
        clock: Clock,
        cursor: str,
        kinds: tuple[str, ...],
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.cursor = cursor
        self.kinds = kinds
        # Per outlet: the newest date already looked at as closed (in memory: after a restart
        # the backfill window is computed again, which costs no duplicates).
        self._closed_through: dict[str, date] = {}

    def latest_closed(self, outlet: OutletConfig, now: datetime | None = None) -> date:
        """The outlet's newest closed business date at `now` (default: the clock's now)."""
        after = closing_offset(outlet.summary_after or self.settings.after)
        return latest_closed(now or self.clock.now(), ZoneInfo(outlet.timezone), after)

    async def due(self, outlet: OutletConfig) -> DueDates:
        """The dates of `outlet` to compute now (see the class)."""
        now = self.clock.now()
        closed = self.latest_closed(outlet)
        backfill = self.settings.backfill_days
        previous = self._closed_through.get(outlet.id, closed - timedelta(days=backfill))
        dates = {previous + timedelta(days=n) for n in range(1, (closed - previous).days + 1)}

        stored = from_cursor(await self.store.get_cursor(outlet.id, self.cursor))
        since = stored or now - timedelta(days=backfill)
        changed = await self.store.changed_business_dates(outlet.id, self.kinds, since=since)
        # Dates still open are left for when they close; the watermark moves past them anyway.
        dates |= {day for day in changed if day <= closed}
        watermark = max([since, *changed.values()])
        cursor = None
        if stored is None or watermark > stored:
            cursor = CursorUpdate(outlet.id, self.cursor, to_cursor(watermark))
        return DueDates(outlet.id, sorted(dates), cursor, closed)

    def done(self, due: DueDates) -> None:
        """Remember that `due`'s dates were stored: the next look starts after its closed date."""
        self._closed_through[due.outlet] = due.closed


async def store_derived(
    store: IngestStore,
    due: DueDates,
    records: Sequence[DailySummary | Reconciliation],
    routes: tuple[str, ...],
    event: str,
) -> IngestResult | None:
    """Ingest records core derived for `due`'s dates with its cursor, and log the dates that
    changed (an unchanged record is a no-op: no revision, no outbox row)."""
    if not records and due.cursor is None:
        return None
    result = await store.ingest(
        IngestRequest(records=list(records), routes=[routes] * len(records), cursor=due.cursor)
    )
    changed_days = sorted(
        record.business_date.isoformat()
        for record, outcome in zip(records, result.records, strict=True)
        if outcome.outcome in (Outcome.INSERTED, Outcome.UPDATED)
    )
    if changed_days:
        log.info(event, outlet=due.outlet, dates=changed_days, outbox_rows=result.outbox_rows)
    return result


class DerivedDaysLoop(abc.ABC):
    """A loop keeping a record core derives per outlet and business date (a daily summary, a
    reconciliation) up to date: every `every_seconds`, each outlet's due dates."""

    settings: SummarySettings | ReconciliationSettings

    @abc.abstractmethod
    def outlets(self) -> list[OutletConfig]:
        """The outlets this loop derives records for."""

    @abc.abstractmethod
    async def derive(self, outlet: OutletConfig) -> int:
        """Store the records of one outlet's due dates; returns how many were made."""

    async def run_forever(self) -> None:
        """Look every `every_seconds` until cancelled (supervised: a failure restarts it)."""
        while True:
            await self.run_once()
            supervision.cycle_done()
            await asyncio.sleep(self.settings.every_seconds)

    async def run_once(self) -> int:
        """Derive every outlet's newly closed and changed dates; returns the records made."""
        return sum([await self.derive(outlet) for outlet in self.outlets()])


class SummaryService(DerivedDaysLoop):
    """The loop that keeps every outlet's daily summaries up to date in the store."""

    settings: SummarySettings

    def __init__(self, store: IngestStore, loaded: LoadedConfig, clock: Clock) -> None:
        self.store = store
        self.loaded = loaded
        self.clock = clock
        self.settings = loaded.config.summaries
        self.days = ClosedDays(store, self.settings, clock, CURSOR, (Transaction.kind,))

    def outlets(self) -> list[OutletConfig]:
        """The outlets whose summaries some sink receives; only those are summed up."""
        return [
            outlet
            for outlet in self.loaded.config.outlets
            if self.loaded.sinks_for(outlet.id, DailySummary.kind)
        ]

    async def derive(self, outlet: OutletConfig) -> int:
        """Ingest the summaries of one outlet's dates that closed or changed since last time."""
        due = await self.days.due(outlet)
        summaries: list[DailySummary] = []
        for day in due.dates:
            stored_records = await self.store.records_of_day(outlet.id, Transaction.kind, day)
            transactions = [Transaction.model_validate_json(r.payload) for r in stored_records]
            summaries.extend(summarise(outlet.id, day, transactions))
        routes = self.loaded.sinks_for(outlet.id, DailySummary.kind)
        await store_derived(self.store, due, summaries, routes, "summaries.changed")
        self.days.done(due)
        return len(summaries)
