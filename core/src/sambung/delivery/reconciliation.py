"""Daily reconciliation: an outlet's POS sales of a business date against what its payment
gateways (Xendit, Midtrans) collected, one `reconciliation` record per outlet and date.

How it matches: each collected payment (paid or settled) is linked to the sale its reference
names (per payment connector, `reconciliation.match`: a template over the sale's unified fields,
`{external_id}` by default); what is left is paired by equal amount within one payment method,
in time order; what is still left is unmatched. POS sales count as daily summaries count them
(a refund against, a voided sale nowhere); a refund of a sale of the same day nets into that
sale, so a sale refunded in full expects no payment. Payments are dated by their `paid_at` in
the outlet's timezone (the plugins set `business_date` from it; `created` only when unpaid),
never the server's. A matched payment counts under its sale's method; an unmatched one under
the method its channel names (`QRIS`, `OVO` → ewallet, `BCA` or `bank_transfer:bca` → bank
transfer).

Like daily summaries, a loop recomputes every newly closed date and every closed date whose
transactions or payments changed since its last look; the store's upsert makes an unchanged
result a no-op and a changed one a new revision with its own outbox row.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from sambung.clock import Clock
from sambung.config import LoadedConfig, OutletConfig, ReconciliationSettings
from sambung.models import (
    MatchedPayment,
    MethodComparison,
    MethodTotal,
    Payment,
    PaymentMethod,
    PaymentStatus,
    PaymentTotal,
    Reconciliation,
    Transaction,
    UnmatchedPayment,
    UnmatchedSale,
)
from sambung.store import IngestStore
from sambung.validation import request_problem

from .summaries import (
    SOURCE_SYSTEM,
    ClosedDays,
    DerivedDaysLoop,
    counted,
    store_derived,
    summary_id,
)

log = structlog.get_logger(__name__)

# The cursor (in the store's cursors table) holding how far changed sales and payments were read.
CURSOR = "sambung.reconciliation"
# What a day's reconciliation says: nothing yet while the day is open, else its verdict.
ReconciliationState = Literal["open", "matched", "differs"]
COLLECTED = frozenset({PaymentStatus.PAID, PaymentStatus.SETTLED})
_ZERO = Decimal(0)


def reconciliation_id(outlet: str, business_date: date) -> str:
    """The external id of an outlet's reconciliation of a day: `{outlet}:{date}`."""
    return summary_id(outlet, business_date)


def sale_reference(sale: Transaction, template: str) -> str:
    """The payment reference `template` (`{external_id}`) makes of `sale`."""
    return template.format(
        external_id=sale.external_id, outlet=sale.outlet, source_system=sale.source_system
    ).strip()


# Gateway channels that are a bank's virtual account or transfer but name no method in words:
# Xendit's `payment_channel` (`BCA`, `MANDIRI`) and Midtrans' Mandiri bill (`echannel`).
_BANK_CHANNELS = frozenset(
    {"bca", "bni", "bri", "mandiri", "permata", "cimb", "bsi", "bjb", "bnc", "echannel"}
    | {"sahabat_sampoerna", "muamalat"}
)


def channel_method(channel: str | None) -> PaymentMethod:
    """The payment method a gateway's channel names (`QRIS`, `OVO` → ewallet, `BCA` → bank
    transfer, `credit_card` → card)."""
    method = PaymentMethod.from_label(channel)
    if method is PaymentMethod.OTHER and channel and channel.lower() in _BANK_CHANNELS:
        return PaymentMethod.BANK_TRANSFER
    return method


def _ref(record: Transaction | Payment) -> str:
    return f"{record.source_system}:{record.external_id}"


@dataclass
class _Sale:
    """A sale still waiting for its payment: what it expects, net of same-day refunds."""

    transaction: Transaction
    amount: Decimal


def reconcile(
    outlet: str,
    business_date: date,
    transactions: Iterable[Transaction],
    payments: Iterable[Payment],
    *,
    match: dict[str, str | None],
    methods: Sequence[PaymentMethod],
) -> Reconciliation:
    """The reconciliation of one outlet's day from its stored sales and payments (pure)."""
    transactions = [t for t in transactions if t.currency == "IDR"]
    payments = sorted(
        (p for p in payments if p.currency == "IDR"),
        key=lambda p: (p.paid_at or p.occurred_at, p.source_system, p.external_id),
    )
    signed = counted(transactions)
    by_method: dict[PaymentMethod, list[Decimal]] = {}
    counts = {"sale": 0, "refund": 0, "void": 0}
    for sign, t in signed:
        counts[t.type.value] += 1
        if sign:
            entry = by_method.setdefault(t.payment_method, [_ZERO, _ZERO])
            entry[0] += 1
            entry[1] += sign * t.total
    compared = set(methods)

    # What each sale of a compared method still expects; refunds naming a sale of this day net
    # into it, and any other counted refund (or void of another day's sale) stands alone.
    sales: dict[tuple[str, str], _Sale] = {}
    alone: list[tuple[int, Transaction]] = []
    for sign, t in signed:
        if sign == 1 and t.payment_method in compared:
            sales[(t.source_system, t.external_id)] = _Sale(t, t.total)
    for sign, t in signed:
        if sign != -1 or t.payment_method not in compared:
            continue
        named = sales.get((t.source_system, t.reverses_external_id or ""))
        if named is not None:
            named.amount -= t.total
        else:
            alone.append((sign, t))
    waiting = [s for s in sales.values() if s.amount > 0]
    # A refund beyond its sale (more back than was paid) stands alone with what is left over.
    overdrawn = [s for s in sales.values() if s.amount < 0]

    collected = [p for p in payments if p.status in COLLECTED]
    matched: list[MatchedPayment] = []
    taken: set[int] = set()  # id() of the sales linked so far
    # Indexes, so a busy day is matched in one pass rather than sales x payments.
    by_reference: dict[str, dict[str, list[_Sale]]] = {}
    for name, template in match.items():
        if template:
            index = by_reference.setdefault(name, {})
            for sale in waiting:
                index.setdefault(sale_reference(sale.transaction, template), []).append(sale)
    by_amount: dict[tuple[PaymentMethod, Decimal], list[_Sale]] = {}
    for sale in waiting:
        by_amount.setdefault((sale.transaction.payment_method, sale.amount), []).append(sale)

    def take(candidates: list[_Sale] | None) -> _Sale | None:
        for sale in candidates or ():
            if id(sale) not in taken:
                taken.add(id(sale))
                return sale
        return None

    left: list[Payment] = []
    for payment in collected:
        linked = take(by_reference.get(payment.source_system, {}).get(payment.reference))
        if linked is None:
            left.append(payment)
        else:
            matched.append(_pair(linked, payment, "reference"))
    unmatched_payments: list[Payment] = []
    for payment in left:
        method = channel_method(payment.channel)
        linked = take(by_amount.get((method, payment.amount)))
        if linked is None:
            unmatched_payments.append(payment)
        else:
            matched.append(_pair(linked, payment, "amount"))
    waiting = [s for s in waiting if id(s) not in taken]

    unmatched_sales = [
        UnmatchedSale(
            sale=_ref(s.transaction),
            type=s.transaction.type,
            method=s.transaction.payment_method,
            amount=s.amount,
            occurred_at=s.transaction.occurred_at,
        )
        for s in sorted(waiting + overdrawn, key=lambda s: s.transaction.occurred_at)
    ] + [
        UnmatchedSale(
            sale=_ref(t),
            type=t.type,
            method=t.payment_method,
            amount=-t.total,
            occurred_at=t.occurred_at,
        )
        for _, t in alone
    ]
    unmatched = [
        UnmatchedPayment(
            payment=_ref(p),
            reference=p.reference,
            channel=p.channel,
            method=channel_method(p.channel),
            amount=p.amount,
            paid_at=p.paid_at,
        )
        for p in unmatched_payments
    ]

    got: dict[PaymentMethod, Decimal] = {}
    for pair in matched:
        got[pair.method] = got.get(pair.method, _ZERO) + pair.payment_amount
    for item in unmatched:
        got[item.method] = got.get(item.method, _ZERO) + item.amount

    def expected(method: PaymentMethod) -> Decimal:
        # Sales of a method not compared are not expected through a gateway: a payment that
        # arrives under one (a card paid online) shows as a difference against nothing.
        return by_method.get(method, [_ZERO, _ZERO])[1] if method in compared else _ZERO

    comparisons = tuple(
        MethodComparison(
            method=method,
            pos=expected(method),
            payments=got.get(method, _ZERO),
            difference=got.get(method, _ZERO) - expected(method),
        )
        for method in PaymentMethod
        if method in compared or method in got
    )
    gross = sum((p.amount for p in collected), _ZERO)
    fees = sum((p.fee for p in collected), _ZERO)
    draft = Reconciliation(
        outlet=outlet,
        source_system=SOURCE_SYSTEM,
        external_id=reconciliation_id(outlet, business_date),
        business_date=business_date,
        status="matched",
        sales=counts["sale"],
        refunds=counts["refund"],
        voids=counts["void"],
        pos_total=sum((entry[1] for entry in by_method.values()), _ZERO),
        pos_by_method=tuple(
            MethodTotal(method=m, count=int(by_method[m][0]), total=by_method[m][1])
            for m in PaymentMethod
            if m in by_method
        ),
        payments_by_status=_totals(payments, lambda p: p.status.value),
        payments_by_channel=_totals(collected, lambda p: p.channel or "unknown"),
        gross=gross,
        fees=fees,
        net=sum((_net(p) for p in collected), _ZERO),
        methods=comparisons,
        difference=sum((c.difference for c in comparisons), _ZERO),
        matched=tuple(matched),
        unmatched_sales=tuple(unmatched_sales),
        unmatched_payments=tuple(unmatched),
    )
    if differs_beyond(draft, _ZERO):
        return draft.model_copy(update={"status": "differs"})
    return draft


def _pair(sale: _Sale, payment: Payment, by: Literal["reference", "amount"]) -> MatchedPayment:
    return MatchedPayment(
        sale=_ref(sale.transaction),
        payment=_ref(payment),
        by=by,
        method=sale.transaction.payment_method,
        sale_amount=sale.amount,
        payment_amount=payment.amount,
        difference=payment.amount - sale.amount,
    )


def _net(payment: Payment) -> Decimal:
    """What reaches the merchant: the gateway's received amount, else amount - fee."""
    if payment.received_amount is not None:
        return payment.received_amount
    return payment.amount - payment.fee


def _totals(payments: Iterable[Payment], key: Callable[[Payment], str]) -> tuple[PaymentTotal, ...]:
    groups: dict[str, list[Payment]] = {}
    for payment in payments:
        groups.setdefault(key(payment), []).append(payment)
    return tuple(
        PaymentTotal(
            key=name,
            count=len(group),
            gross=sum((p.amount for p in group), _ZERO),
            fee=sum((p.fee for p in group), _ZERO),
            net=sum((_net(p) for p in group), _ZERO),
        )
        for name, group in sorted(groups.items())
    )


def differs_beyond(reconciliation: Reconciliation, tolerance: Decimal) -> bool:
    """Whether any figure of the day is off by more than `tolerance` rupiah: a method's totals,
    a linked payment's amount against its sale's, or an unmatched sale or payment."""
    figures = [
        *(c.difference for c in reconciliation.methods),
        *(m.difference for m in reconciliation.matched),
        *(s.amount for s in reconciliation.unmatched_sales),
        *(p.amount for p in reconciliation.unmatched_payments),
    ]
    return any(abs(figure) > tolerance for figure in figures)


class ReconciliationService(DerivedDaysLoop):
    """The loop that keeps every reconciled outlet's daily reconciliations up to date."""

    def __init__(self, store: IngestStore, loaded: LoadedConfig, clock: Clock) -> None:
        self.store = store
        self.loaded = loaded
        self.clock = clock
        self.settings: ReconciliationSettings = loaded.config.reconciliation
        self.days = ClosedDays(
            store, loaded.config.summaries, clock, CURSOR, (Transaction.kind, Payment.kind)
        )

    def outlets(self) -> list[OutletConfig]:
        """The outlets with a payment connector (one named in `match`) and another connector."""
        payment = set(self.settings.match)
        return [
            outlet
            for outlet in self.loaded.config.outlets
            if set(outlet.connectors) & payment and set(outlet.connectors) - payment
        ]

    async def compute(self, outlet: str, day: date) -> Reconciliation | None:
        """The reconciliation of `outlet`'s `day` from what the store holds now (None for a day
        with neither a sale nor a payment)."""
        transactions = [
            Transaction.model_validate_json(r.payload)
            for r in await self.store.records_of_day(outlet, Transaction.kind, day)
        ]
        payments = [
            Payment.model_validate_json(r.payload)
            for r in await self.store.records_of_day(outlet, Payment.kind, day)
        ]
        if not transactions and not payments:
            return None
        return reconcile(
            outlet,
            day,
            transactions,
            payments,
            match=self.settings.match,
            methods=self.settings.methods,
        )

    async def derive(self, outlet: OutletConfig) -> int:
        """Ingest the reconciliations of one outlet's dates that closed or changed."""
        due = await self.days.due(outlet)
        computed = [await self.compute(outlet.id, day) for day in due.dates]
        results = [r for r in computed if r is not None]
        routes = self.loaded.sinks_for(outlet.id, Reconciliation.kind)
        await store_derived(self.store, due, results, routes, "reconciliation.changed")
        self.days.done(due)
        return len(results)

    def latest_closed(self, outlet: OutletConfig, now: datetime | None = None) -> date:
        """The outlet's newest business date that is over at `now` (default: the clock's): its
        closing time (`summaries.after`) has passed, and so has its local day.

        The loop reconciles a day from its closing time on, and a closing time before midnight
        (the demo's 00:00, a cafe's 23:30) comes while the day still takes sales: its figures
        are a running count then, not a verdict, so the day counts as open until it ends."""
        now = now or self.clock.now()
        yesterday = now.astimezone(ZoneInfo(outlet.timezone)).date() - timedelta(days=1)
        return min(self.days.latest_closed(outlet, now), yesterday)

    def today(self, outlet: OutletConfig) -> date:
        """The outlet's business date now, in its timezone: its latest day, still open."""
        return self.clock.now().astimezone(ZoneInfo(outlet.timezone)).date()

    async def stored(self, outlet: str, days: Iterable[date]) -> list[StoredReconciliation]:
        """The stored reconciliations of `outlet` on `days` (a day not reconciled is left out)."""
        [config] = [o for o in self.loaded.config.outlets if o.id == outlet]
        closed = self.latest_closed(config)
        found: list[StoredReconciliation] = []
        for day in days:
            for record in await self.store.records_of_day(outlet, Reconciliation.kind, day):
                result = Reconciliation.model_validate_json(record.payload)
                found.append(
                    StoredReconciliation(
                        result,
                        record.revision,
                        record.updated_at,
                        differs_beyond(result, self.settings.tolerance),
                        closed=day <= closed,
                    )
                )
        return found

    def _asked(self, query: ReconciliationQuery) -> list[tuple[OutletConfig, list[date]]]:
        """The outlets and days a query names (a `since` reaches back at most a year)."""
        asked: list[tuple[OutletConfig, list[date]]] = []
        for outlet in self.outlets():
            if query.outlet is not None and outlet.id != query.outlet:
                continue
            # The latest day asked: the newest closed one, or today's (still open) when asked.
            closed = self.today(outlet) if query.open else self.latest_closed(outlet)
            if query.date is not None:
                asked.append((outlet, [query.date]))
                continue
            first = max(query.since or closed, closed - timedelta(days=366))
            asked.append(
                (outlet, [first + timedelta(days=n) for n in range((closed - first).days + 1)])
            )
        return asked

    async def find(self, query: ReconciliationQuery) -> list[StoredReconciliation]:
        """The stored reconciliations a query asks for, by outlet then date (see the query)."""
        found: list[StoredReconciliation] = []
        for outlet, days in self._asked(query):
            found.extend(
                r
                for r in await self.stored(outlet.id, days)
                if r.state == "differs" or not query.differs
            )
        return found

    async def fresh(self, query: ReconciliationQuery) -> list[StoredReconciliation]:
        """What `find` would show, computed from the stored sales and payments now, storing
        nothing (revision 0): for an open day, or a store no daemon reconciles."""
        found: list[StoredReconciliation] = []
        now = self.clock.now()
        for outlet, days in self._asked(query):
            closed = self.latest_closed(outlet, now)
            for day in days:
                result = await self.compute(outlet.id, day)
                if result is None:
                    continue
                differs = differs_beyond(result, self.settings.tolerance)
                shown = StoredReconciliation(result, 0, now, differs, closed=day <= closed)
                if shown.state == "differs" or not query.differs:
                    found.append(shown)
        return found

    async def differing(
        self, days: int | None = None, *, now: datetime | None = None
    ) -> list[Reconciliation]:
        """The stored reconciliations of days closed at `now` (default: the clock's), over the
        last `days` (default: the summaries' backfill window), that differ by more than
        `tolerance`: what the `reconciliation_differs` alert fires on."""
        window = self.loaded.config.summaries.backfill_days if days is None else days
        found: list[Reconciliation] = []
        for outlet in self.outlets():
            closed = self.latest_closed(outlet, now)  # an open day is no verdict yet
            span = [closed - timedelta(days=n) for n in range(window, -1, -1)]
            found.extend(
                r.result for r in await self.stored(outlet.id, span) if r.state == "differs"
            )
        return found


@dataclass(frozen=True)
class StoredReconciliation:
    """A stored reconciliation, its revision and when it was written, whether its figures
    differ by more than the configured tolerance, and whether its day is over (`closed`)."""

    result: Reconciliation
    revision: int
    updated_at: datetime
    differs: bool
    closed: bool = True

    @property
    def state(self) -> ReconciliationState:
        """`open` while the day still takes sales (no verdict yet), else its verdict."""
        if not self.closed:
            return "open"
        return "differs" if self.differs else "matched"

    def describe(self) -> dict[str, Any]:
        """As the admin API and `sambung reconcile --json` show it: the record's JSON, plus."""
        return {
            **json.loads(self.result.to_json()),
            "revision": self.revision,
            "updated_at": self.updated_at.isoformat(),
            "differs_beyond_tolerance": self.differs,
            "closed": self.closed,
            "state": self.state,
        }


class ReconciliationQuery(BaseModel):
    """Which reconciliations to show: one outlet or all, one date or every closed date from
    `since`; by default the latest closed date. `open`: through today (still open) instead of
    the latest closed date. `differs`: only closed days beyond the tolerance."""

    model_config = ConfigDict(extra="forbid")

    outlet: str | None = None
    date: dt.date | None = None
    since: dt.date | None = None
    open: bool = False
    differs: bool = False

    @model_validator(mode="after")
    def _one_of(self) -> ReconciliationQuery:
        if self.date is not None and self.since is not None:
            raise ValueError("give date or since, not both")
        return self


RECONCILIATION_KEY: web.AppKey[Callable[[], ReconciliationService]] = web.AppKey("reconciliation")


def add_reconciliation_routes(
    app: web.Application, service: Callable[[], ReconciliationService]
) -> None:
    """Mount `GET /api/v1/reconciliations?outlet=&date=|since=&open=&differs=` on the admin app;
    `service` gives the service over the configuration installed now."""
    app[RECONCILIATION_KEY] = service
    app.router.add_get("/api/v1/reconciliations", _list)


async def _list(request: web.Request) -> web.Response:
    try:
        query = ReconciliationQuery.model_validate(dict(request.query))
    except ValidationError as err:
        return web.json_response(request_problem(err, ReconciliationQuery), status=400)
    service = request.app[RECONCILIATION_KEY]()
    known = [o.id for o in service.outlets()]
    if query.outlet is not None and query.outlet not in known:
        return web.json_response(
            {
                "success": False,
                "error": "not_found",
                "message": f"outlet {query.outlet!r} is not reconciled (reconciled: {known})",
            },
            status=404,
        )
    found = await service.find(query)
    return web.json_response(
        {
            "tolerance": str(service.settings.tolerance),
            "reconciliations": [r.describe() for r in found],
        }
    )
