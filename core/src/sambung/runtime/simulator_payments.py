"""The simulator's payments: a gateway pays the demo's POS sales, so `make run` shows days that
reconcile and days that do not.

At every outlet with a payment gateway that offers `example_payment` (Xendit) and a POS
connector beside it, each sale stored today through a method the gateway takes
(`reconciliation.methods`: QRIS, e-wallet, transfer), whichever way it came in (webhook, poll,
file), is paid a moment later under the reference the sale's reference template makes. At the
first such outlet in the file (kemang in the example config) not all are: every 7th of its
gateway sales is never paid, every 9th is paid Rp 2,000 short, and after every 11th a payment
arrives that no sale names; every other outlet is paid exactly, so its days match.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import aiohttp
import structlog

from sambung.config import WEBHOOK_PATH
from sambung.connectors import ConnectorSettings, WebhookConnector
from sambung.delivery.reconciliation import sale_reference
from sambung.models import Payment, Transaction, TransactionType
from sambung.store import IngestStore

if TYPE_CHECKING:
    from .daemon import Daemon

log = structlog.get_logger(__name__)
Webhook = WebhookConnector[ConnectorSettings]
SHORT = Decimal(2000)


class PaymentSimulator:
    """Pays one outlet's stored sales through its gateway (see the module's docstring)."""

    def __init__(self, daemon: Daemon, gateway: Webhook, *, mismatches: bool) -> None:
        self.gateway = gateway
        self.mismatches = mismatches
        settings = daemon.loaded.config.reconciliation
        self.template = settings.match.get(gateway.name)
        self.methods = frozenset(settings.methods)
        self.clock = gateway.context.clock
        # Numbered from the clock, so a restarted demo makes new invoices.
        self.sequence = int(self.clock.now().timestamp()) * 100
        self.sales = 0
        self.seen: set[str] = set()

    def reference(self, sale: Transaction) -> str:
        """The reference a payment for `sale` carries."""
        if self.template:
            return sale_reference(sale, self.template)
        return f"{sale.outlet}-order-{sale.external_id}"

    async def pay_new(self, session: aiohttp.ClientSession, store: IngestStore) -> None:
        """Pay (or, now and then, not) the gateway sales stored today since the last look."""
        outlet = self.gateway.outlet
        today = self.clock.now().astimezone(outlet.timezone).date()
        stored = await store.records_of_day(outlet.id, Payment.kind, today)
        # Sales paid before a restart keep their payments: only new ones are paid.
        paid = {Payment.model_validate_json(r.payload).reference for r in stored}
        for record in await store.records_of_day(outlet.id, Transaction.kind, today):
            sale = Transaction.model_validate_json(record.payload)
            reference = self.reference(sale)
            if (
                sale.type is not TransactionType.SALE
                or sale.payment_method not in self.methods
                or reference in self.seen
            ):
                continue
            self.seen.add(reference)
            if reference in paid:
                continue
            self.sales += 1
            if self.mismatches and self.sales % 7 == 0:
                log.info("simulator.sale_left_unpaid", outlet=outlet.id, sale=sale.external_id)
                continue
            short = self.mismatches and self.sales % 9 == 0 and sale.total > SHORT
            amount = sale.total - SHORT if short else sale.total
            await self._pay(session, reference, amount, sale.payment_method.value)
            if self.mismatches and self.sales % 11 == 0:
                await self._pay(session, f"{outlet.id}-walk-in-{self.sequence}", amount, "qris")

    async def _pay(
        self, session: aiohttp.ClientSession, reference: str, amount: Decimal, method: str
    ) -> None:
        self.sequence += 1
        paid_at = self.clock.now() - timedelta(seconds=1)
        request = self.gateway.example_payment(
            self.sequence, reference=reference, amount=amount, method=method, paid_at=paid_at
        )
        if request is None:
            return
        path = f"{WEBHOOK_PATH}/{self.gateway.name}/{self.gateway.outlet.id}"
        try:
            async with session.post(path, data=request.body, headers=request.headers) as answer:
                if answer.status != 200:
                    log.warning(
                        "simulator.payment_refused", status=answer.status, reference=reference
                    )
        except aiohttp.ClientError as err:
            log.warning("simulator.post_failed", connector=self.gateway.name, error=str(err))


def payment_simulators(daemon: Daemon) -> list[PaymentSimulator]:
    """The payment simulator of every outlet whose gateway (a webhook connector named in
    `reconciliation.match`) has example payments and that has a POS connector beside it."""
    gateways = set(daemon.loaded.config.reconciliation.match)
    found: dict[str, PaymentSimulator] = {}
    for connector in daemon.webhook_connectors():
        outlet = next(o for o in daemon.loaded.config.outlets if o.id == connector.outlet.id)
        if outlet.id in found or connector.name not in gateways:
            continue
        if not set(outlet.connectors) - gateways:
            continue
        probe = connector.example_payment(
            0, reference="probe", amount=Decimal(1), method="qris", paid_at=daemon.clock.now()
        )
        if probe is not None:
            found[outlet.id] = PaymentSimulator(daemon, connector, mismatches=not found)
    return list(found.values())


async def pay_sales(daemon: Daemon, *, every: float = 2.0) -> None:
    """Pay every payment simulator's new sales about every `every` seconds, until cancelled."""
    simulators = payment_simulators(daemon)
    if not simulators:
        return
    log.info("simulator.paying", outlets=[s.gateway.outlet.id for s in simulators])
    async with aiohttp.ClientSession(base_url=daemon.local_url) as session:
        while True:
            for simulator in simulators:
                await simulator.pay_new(session, daemon.store)
            await asyncio.sleep(every)
