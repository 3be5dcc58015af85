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

import asyncio
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import structlog

from sambung.clock import Clock
from sambung.config import LoadedConfig, OutletConfig, closing_offset
from sambung.intake.polling import from_cursor, to_cursor
from sambung.models import DailySummary, SummaryLine, Transaction, TransactionType
from sambung.runtime import supervision
from sambung.store import CursorUpdate, IngestRequest, IngestStore, Outcome

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
    voided: set[tuple[str, str | None]] = {
        (t.source_system, t.reverses_external_id)
        for t in transactions
        if t.type is TransactionType.VOID and t.reverses_external_id
    }
    sale_keys: set[tuple[str, str | None]] = {
        (t.source_system, t.external_id) for t in transactions if t.type is TransactionType.SALE
    }
    totals = dict.fromkeys(
        ("subtotal", "discount", "service_charge", "tax", "rounding", "total"), _ZERO
    )
    lines: dict[tuple[str, Decimal], list[Decimal]] = {}
    names: dict[tuple[str, Decimal], tuple[str | None, str]] = {}
    counts = {"sale": 0, "refund": 0, "void": 0}
    for t in sorted(transactions, key=lambda t: (t.occurred_at, t.external_id)):
        sign = _sign(t, voided, sale_keys)
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


class SummaryService:
    """The loop that keeps every outlet's daily summaries up to date in the store."""

    def __init__(self, store: IngestStore, loaded: LoadedConfig, clock: Clock) -> None:
        self.store = store
        self.loaded = loaded
        self.clock = clock
        self.settings = loaded.config.summaries
        # Per outlet: the newest date already looked at as closed (in memory: after a restart
        # the backfill window is summed up again, which costs no duplicates).
        self._closed_through: dict[str, date] = {}

    def outlets(self) -> list[OutletConfig]:
        """The outlets whose summaries some sink receives; only those are summed up."""
        return [
            outlet
            for outlet in self.loaded.config.outlets
            if self.loaded.sinks_for(outlet.id, DailySummary.kind)
        ]

    async def run_forever(self) -> None:
        """Look every `every_seconds` until cancelled (supervised: a failure restarts it)."""
        while True:
            await self.run_once()
            supervision.cycle_done()
            await asyncio.sleep(self.settings.every_seconds)

    async def run_once(self) -> int:
        """Sum up every outlet's newly closed and changed dates; returns summaries ingested."""
        return sum([await self.summarise_outlet(outlet) for outlet in self.outlets()])

    async def summarise_outlet(self, outlet: OutletConfig) -> int:
        """Ingest the summaries of one outlet's dates that closed or changed since last time."""
        now = self.clock.now()
        after = closing_offset(outlet.summary_after or self.settings.after)
        closed = latest_closed(now, ZoneInfo(outlet.timezone), after)
        backfill = self.settings.backfill_days
        previous = self._closed_through.get(outlet.id, closed - timedelta(days=backfill))
        dates = {previous + timedelta(days=n) for n in range(1, (closed - previous).days + 1)}

        stored = from_cursor(await self.store.get_cursor(outlet.id, CURSOR))
        since = stored or now - timedelta(days=backfill)
        changed = await self.store.changed_business_dates(outlet.id, Transaction.kind, since=since)
        # Dates still open are left for when they close; the watermark moves past them anyway.
        dates |= {day for day in changed if day <= closed}
        watermark = max([since, *changed.values()])

        summaries: list[DailySummary] = []
        for day in sorted(dates):
            stored_records = await self.store.records_of_day(outlet.id, Transaction.kind, day)
            transactions = [Transaction.model_validate_json(r.payload) for r in stored_records]
            summaries.extend(summarise(outlet.id, day, transactions))
        routes = self.loaded.sinks_for(outlet.id, DailySummary.kind)
        cursor = None
        if stored is None or watermark > stored:
            cursor = CursorUpdate(outlet.id, CURSOR, to_cursor(watermark))
        if summaries or cursor is not None:
            result = await self.store.ingest(
                IngestRequest(records=summaries, routes=[routes] * len(summaries), cursor=cursor)
            )
            changed_days = sorted(
                s.business_date.isoformat()
                for s, r in zip(summaries, result.records, strict=True)
                if r.outcome in (Outcome.INSERTED, Outcome.UPDATED)
            )
            if changed_days:
                log.info(
                    "summaries.changed",
                    outlet=outlet.id,
                    dates=changed_days,
                    outbox_rows=result.outbox_rows,
                )
        self._closed_through[outlet.id] = closed
        return len(summaries)
