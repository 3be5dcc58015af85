"""The simulator's payments: a gateway pays the demo's POS sales, so `make run` shows days that
reconcile and days that do not.

At every outlet with a payment gateway that offers `example_payment` (Xendit) and a POS
connector beside it, each sale stored today through a method the gateway takes
(`reconciliation.methods`: QRIS, e-wallet, transfer), whichever way it came in (webhook, poll,
file), is paid a moment later under the reference the sale's reference template makes. At the
first such outlet in the file (kemang in the example config) not all are: every 7th of its
gateway sales is never paid, every 9th is paid Rp 2,000 short, and after every 11th a payment
arrives that no sale names; every other outlet is paid exactly.

Today changes all the time (a sale is stored a moment before its payment), so at start the
simulator also rings up a day of sales yesterday through the outlet's POS connector and pays
them the same way: a closed day that matches at panakkukang and differs at kemang, stable.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, TypeGuard

import aiohttp
import structlog

from sambung.clock import FixedClock
from sambung.config import WEBHOOK_PATH
from sambung.connectors import ConnectorSettings, WebhookConnector, WebhookRequest
from sambung.delivery.reconciliation import sale_reference
from sambung.models import Payment, Record, Transaction, TransactionType
from sambung.store import IngestStore

if TYPE_CHECKING:
    from .daemon import Daemon

log = structlog.get_logger(__name__)
Webhook = WebhookConnector[ConnectorSettings]
SHORT = Decimal(2000)
# Yesterday's sales and invoices are numbered from here (the same every start), and a stray
# payment's invoice this far from its sale's.
YESTERDAY, YESTERDAY_SALES, STRAY = 9_000_000, 16, 500_000


class PaymentSimulator:
    """Pays one outlet's stored sales through its gateway (see the module's docstring)."""

    def __init__(self, daemon: Daemon, gateway: Webhook, pos: Webhook, *, mismatches: bool) -> None:
        self.gateway = gateway
        self.pos = pos
        self.mismatches = mismatches
        settings = daemon.loaded.config.reconciliation
        self.template = settings.match.get(gateway.name)
        self.methods = frozenset(settings.methods)
        self.clock = gateway.context.clock
        # Numbered from the clock, so a restarted demo makes new invoices.
        self.sequence = int(self.clock.now().timestamp()) * 100
        self.sales = 0
        self.seen: set[str] = set()  # references paid, or left unpaid on purpose
        self.seeded = False

    def reference(self, sale: Transaction) -> str:
        """The reference a payment for `sale` carries."""
        if self.template:
            return sale_reference(sale, self.template)
        return f"{sale.outlet}-order-{sale.external_id}"

    def is_gateway_sale(self, record: Record) -> TypeGuard[Transaction]:
        """Whether `record` is a sale through a method the gateway takes."""
        return (
            isinstance(record, Transaction)
            and record.type is TransactionType.SALE
            and record.payment_method in self.methods
        )

    async def yesterday(self, session: aiohttp.ClientSession) -> None:
        """Ring up and pay a day of sales yesterday, so a closed day is reconciled as soon as
        the demo starts; the same sales every start, so a restarted demo's posts are
        duplicates that change nothing."""
        tz = self.gateway.outlet.timezone
        day = self.clock.now().astimezone(tz).date() - timedelta(days=1)
        for n in range(1, YESTERDAY_SALES + 1):
            at = datetime.combine(day, time(10), tzinfo=tz) + timedelta(minutes=29 * n)
            shifted = type(self.pos)(replace(self.pos.context, clock=FixedClock(at)))
            request = shifted.example_webhook(YESTERDAY + n)
            if request is None or not await _post(session, self.pos, request):
                continue
            for sale in self.pos.parse(request).records:
                if self.is_gateway_sale(sale):
                    paid_at = at + timedelta(minutes=1)
                    await self.settle(session, sale, paid_at, YESTERDAY + n)

    async def pay_new(self, session: aiohttp.ClientSession, store: IngestStore) -> None:
        """Pay (or, now and then, not) the gateway sales stored today since the last look."""
        outlet = self.gateway.outlet
        today = self.clock.now().astimezone(outlet.timezone).date()
        if not self.seeded:
            self.seeded = True
            # Sales paid before a restart keep their payments: only new ones are paid.
            for stored in await store.records_of_day(outlet.id, Payment.kind, today):
                self.seen.add(Payment.model_validate_json(stored.payload).reference)
        # The newest records only: a long demo's day holds far more than a look needs.
        recent = await store.list_records(outlet=outlet.id, kind=Transaction.kind, limit=500)
        for record in reversed(recent):
            sale = Transaction.model_validate_json(record.payload)
            reference = self.reference(sale)
            if sale.business_date != today or not self.is_gateway_sale(sale):
                continue
            if reference not in self.seen:
                self.seen.add(reference)
                self.sequence += 1
                await self.settle(session, sale, self.clock.now(), self.sequence)

    async def settle(
        self, session: aiohttp.ClientSession, sale: Transaction, paid_at: datetime, sequence: int
    ) -> None:
        """Pay `sale` at `paid_at` as invoice `sequence`, or at kemang now and then not (see the
        module's docstring)."""
        self.sales += 1
        if self.mismatches and self.sales % 7 == 0:
            log.info("simulator.sale_left_unpaid", outlet=sale.outlet, sale=sale.external_id)
            return
        short = self.mismatches and self.sales % 9 == 0 and sale.total > SHORT
        amount = sale.total - SHORT if short else sale.total
        reference = self.reference(sale)
        await self._pay(session, sequence, reference, amount, sale.payment_method.value, paid_at)
        if self.mismatches and self.sales % 11 == 0:
            stray = f"{sale.outlet}-walk-in-{sequence}"
            await self._pay(session, sequence + STRAY, stray, amount, "qris", paid_at)

    async def _pay(
        self,
        session: aiohttp.ClientSession,
        sequence: int,
        reference: str,
        amount: Decimal,
        method: str,
        paid_at: datetime,
    ) -> None:
        request = self.gateway.example_payment(
            sequence, reference=reference, amount=amount, method=method, paid_at=paid_at
        )
        if request is not None:
            await _post(session, self.gateway, request)


async def _post(
    session: aiohttp.ClientSession, connector: Webhook, request: WebhookRequest
) -> bool:
    """Post `request` to `connector`'s webhook path; whether it was taken (200)."""
    path = f"{WEBHOOK_PATH}/{connector.name}/{connector.outlet.id}"
    try:
        async with session.post(path, data=request.body, headers=request.headers) as answer:
            if answer.status != 200:
                log.warning("simulator.payment_refused", status=answer.status, path=path)
            return answer.status == 200
    except aiohttp.ClientError as err:
        log.warning("simulator.post_failed", connector=connector.name, error=str(err))
        return False


def payment_simulators(daemon: Daemon) -> list[PaymentSimulator]:
    """The payment simulator of every outlet whose gateway (a webhook connector named in
    `reconciliation.match`) has example payments and that has a POS connector beside it."""
    gateways = set(daemon.loaded.config.reconciliation.match)
    connectors = daemon.webhook_connectors()
    found: dict[str, PaymentSimulator] = {}
    for gateway in connectors:
        outlet = gateway.outlet.id
        if outlet in found or gateway.name not in gateways:
            continue
        pos = next(
            (
                c
                for c in connectors
                if c.outlet.id == outlet and c.name not in gateways and c.example_webhook(1)
            ),
            None,
        )
        probe = gateway.example_payment(
            0, reference="probe", amount=Decimal(1), method="qris", paid_at=daemon.clock.now()
        )
        if pos is not None and probe is not None:
            found[outlet] = PaymentSimulator(daemon, gateway, pos, mismatches=not found)
    return list(found.values())


async def pay_sales(daemon: Daemon, *, every: float = 2.0) -> None:
    """Pay every payment simulator's new sales about every `every` seconds, until cancelled."""
    simulators = payment_simulators(daemon)
    if not simulators:
        return
    log.info("simulator.paying", outlets=[s.gateway.outlet.id for s in simulators])
    async with aiohttp.ClientSession(base_url=daemon.local_url) as session:
        for simulator in simulators:
            await simulator.yesterday(session)
        while True:
            for simulator in simulators:
                await simulator.pay_new(session, daemon.store)
            await asyncio.sleep(every)
