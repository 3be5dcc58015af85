"""The Midtrans connector: HTTP notifications verified by their `signature_key`, and a poll that
heals their gaps by asking `GET /v2/{order_id}/status` about order ids we already know."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy
from pydantic import Field, HttpUrl, field_validator
from sambung.plugin import (
    MAX_KNOWN_DAYS,
    ConnectorContext,
    Duration,
    InvalidPayload,
    Page,
    PaymentMethod,
    PaymentStatus,
    PollConnector,
    PollSettings,
    PollWindow,
    RequestRejected,
    Secrets,
    SignatureError,
    TransactionType,
    WebhookConnector,
    WebhookEvent,
    WebhookRequest,
    dumps,
    get,
    loads,
    page_of,
)

from .client import MidtransClient
from .mapping import (
    check_order_template,
    dedup_key,
    sale_order_id,
    signature,
    to_payment,
    verify,
)

# Orders asked about per committed page: a run that stops half-way keeps what it learnt.
ORDERS_PER_PAGE = 20


class MidtransSettings(PollSettings):
    """An outlet's `midtrans` block in the YAML."""

    # The account's server key (a list while moving between accounts): it checks every
    # notification's signature_key, and is the HTTP Basic user of Get Status.
    server_key: Secrets
    # Poll mode (gap healing): Midtrans has no list API, so each run asks Get Status about
    # the order ids we know of: payments still pending, and orders named by POS sales.
    base_url: HttpUrl = HttpUrl("https://api.midtrans.com")
    heal_pending: bool = True
    # POS connectors whose sales name a Midtrans order (a Pawoon sale paid by QRIS through
    # Midtrans), which sale payment methods went through Midtrans, and how the order id is
    # written from the sale (`{external_id}`, `{outlet}`, `{source_system}`).
    sales_from: tuple[str, ...] = ()
    sale_methods: tuple[PaymentMethod, ...] = (
        PaymentMethod.QRIS,
        PaymentMethod.EWALLET,
        PaymentMethod.CARD,
        PaymentMethod.BANK_TRANSFER,
    )
    order_id: str = "{external_id}"
    # How many of the outlet's business days (today first) to look back for both.
    heal_days: int = Field(2, ge=1, le=MAX_KNOWN_DAYS)
    # At most this many Get Status calls per run; the rest wait for the next runs, in turn.
    max_orders_per_run: int = Field(200, ge=1, le=10_000)
    # An order Midtrans does not know (404) is asked about again only after this long.
    not_found_retry: Duration = timedelta(minutes=30)

    @field_validator("order_id")
    @classmethod
    def _known_fields(cls, value: str) -> str:
        return check_order_template(value)


class MidtransConnector(WebhookConnector[MidtransSettings], PollConnector[MidtransSettings]):
    """Midtrans payments: pushed as HTTP notifications, and healed by polling their status."""

    name = "midtrans"
    # Midtrans publishes no limit for Get Status: ask politely, one account's loops together.
    rate_limit = 5.0
    max_in_flight = 2

    def __init__(self, context: ConnectorContext[MidtransSettings]) -> None:
        super().__init__(context)
        self._created: dict[int, datetime] = {}  # the demo's orders awaiting their second step
        # Poll mode: where the next run starts in the candidates, and when each order id
        # Midtrans did not know was last asked about.
        self._turn = 0
        self._not_found: dict[str, datetime] = {}
        self._refused: set[str] = set()  # orders whose refusal was logged already

    # -- webhook mode ------------------------------------------------------------------------

    def verify(self, request: WebhookRequest) -> None:
        """Accept only notifications whose `signature_key` matches (constant-time)."""
        try:
            body = request.payload
        except InvalidPayload as err:
            raise SignatureError("not JSON, so no signature_key") from err
        verify(body, self.settings.server_key)

    def parse(self, request: WebhookRequest) -> WebhookEvent:
        """A notification → its payment; the same status again is a duplicate."""
        payment = to_payment(request.payload, self.outlet)
        return WebhookEvent(
            event_type=f"payment.{get(request.payload, 'transaction_status')}",
            records=[payment],
            dedup_key=dedup_key(request.payload),
        )

    def signed(self, body: bytes) -> WebhookRequest | None:
        """`body` with its `signature_key` recomputed in place (every other byte kept); None
        when the body has no signable fields, or no `signature_key` spelled plainly once."""
        try:
            payload = loads(body)
        except InvalidPayload:
            return None
        if not isinstance(payload, dict):
            return None
        given = payload.get("signature_key")
        order_id, status_code, gross = (
            payload.get(k) for k in ("order_id", "status_code", "gross_amount")
        )
        if not all(isinstance(v, str) for v in (given, order_id, status_code, gross)):
            return None
        key = self.settings.server_key[0].get_secret_value()
        try:
            expected = signature(str(order_id), str(status_code), str(gross), key)
        except UnicodeEncodeError:  # text no Midtrans can sign (a lone surrogate)
            return None
        spelled = json.dumps(given).encode()
        if body.count(spelled) != 1:
            return None
        headers = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json"}))
        return WebhookRequest(
            body=body.replace(spelled, json.dumps(expected).encode()), headers=headers
        )

    def example_webhook(self, sequence: int) -> WebhookRequest | None:
        """A notification at the outlet's time now, in cycles of five orders: pending then
        settled, one order's pending arriving after its settlement (stale), some refunded
        instead, and one whose settlement never arrives (Midtrans settled it: the poll finds
        it, `example_vendor` answering from the same ledger)."""
        from . import fake  # only the demo and tests need it

        key = self.settings.server_key[0].get_secret_value()
        cycle, step = divmod(sequence - 1, 9)
        index, phase = (4, 0) if step == 8 else divmod(step, 2)
        order = cycle * 5 + index
        now = self.context.clock.now()
        # An order's transaction_time is fixed at Midtrans: its second notification keeps it.
        created = self._created.pop(order, None) or now - timedelta(minutes=2)
        if phase == 0 and index != 4:
            self._created[order] = created
        status = "pending" if phase == 0 else "settlement"
        if index == 3:  # the settlement overtakes the pending: the late pending is stale
            status = "settlement" if phase == 0 else "pending"
        if phase == 1 and order % 7 == 6:
            status = "refund"
        number = order + 1
        body = fake.notification(number, created, status, key, outlet=self.outlet.id)
        final = body
        if index == 4:  # its settlement is lost on the way: only Midtrans knows it
            final = fake.notification(number, created, "settlement", key, outlet=self.outlet.id)
        if not (index == 3 and phase == 1):  # Midtrans keeps the settlement, not the late pending
            fake.remember(fake.demo_ledger(self.outlet.id), final)
        headers = CIMultiDict({"Content-Type": "application/json"})
        return WebhookRequest(body=dumps(body), headers=CIMultiDictProxy(headers))

    # -- poll mode: gap healing --------------------------------------------------------------

    async def poll(self, window: PollWindow) -> AsyncIterator[Page]:
        """Ask Get Status about this run's candidate orders, a page of payments at a time;
        an order Midtrans does not know is skipped (asked again after `not_found_retry`)."""
        now = self.context.clock.now()
        orders = self._this_run(await self.candidates(), now)
        keys = self.settings.server_key
        clients = [MidtransClient(self.http, str(self.settings.base_url), key) for key in keys]
        found = unknown = 0
        refused: dict[str, str] = {}
        for start in range(0, len(orders), ORDERS_PER_PAGE):
            rows = []
            for order_id in orders[start : start + ORDERS_PER_PAGE]:
                try:
                    body = await _first_known(clients, order_id)
                except RequestRejected as err:  # this order only (a malformed id): not the run
                    refused[order_id] = str(err)
                    body = None
                if body is None:
                    self._not_found[order_id] = now
                    unknown += 1
                    continue
                self._not_found.pop(order_id, None)
                rows.append(body)
            found += len(rows)
            yield page_of(rows, self._map, None)
        fresh = [order for order in refused if order not in self._refused]
        if fresh:  # once per refused order, not every run
            first = fresh[0]
            self.log.warning(
                "midtrans.status_refused", orders=len(fresh), order_id=first, error=refused[first]
            )
        # Still remembered while not asked again (not_found_retry), so logged once per order.
        self._refused = set(refused) | (self._refused & self._not_found.keys())
        self.log.debug("midtrans.healed", asked=len(orders), found=found, unknown=unknown)
        yield Page(records=(), cursor=window.until)

    async def candidates(self) -> list[str]:
        """Order ids to ask about, oldest concern first: payments still pending, then orders
        named by the outlet's POS sales that no Midtrans payment records yet."""
        settings = self.settings
        payments = await self.known.recent(
            "payment", days=settings.heal_days, source_systems={self.name}, limit=100_000
        )
        status = {p.external_id: p.data.get("status") for p in payments}
        wanted: dict[str, None] = {}
        if settings.heal_pending:
            pending = PaymentStatus.PENDING.value
            wanted.update((order, None) for order, s in status.items() if s == pending)
        if settings.sales_from:
            sales = await self.known.recent(
                "transaction",
                days=settings.heal_days,
                source_systems=set(settings.sales_from),
                where={
                    "type": {TransactionType.SALE.value},
                    "payment_method": {m.value for m in settings.sale_methods},
                },
                limit=100_000,
            )
            for sale in sales:
                order = sale_order_id(sale.data, settings.order_id)
                if order is not None and order not in status:
                    wanted[order] = None
        return list(wanted)

    def _this_run(self, candidates: Sequence[str], now: datetime) -> list[str]:
        """The candidates this run asks about: not those Midtrans lately did not know, at most
        `max_orders_per_run`, starting where the last run stopped so none waits for ever."""
        retry = self.settings.not_found_retry
        self._not_found = {o: at for o, at in self._not_found.items() if now - at < retry}
        due = [order for order in candidates if order not in self._not_found]
        limit = self.settings.max_orders_per_run
        if len(due) <= limit:
            self._turn = 0
            return due
        start = self._turn % len(due)
        self._turn = start + limit
        return (due[start:] + due[:start])[:limit]

    def _map(self, row: Any) -> Any:
        return to_payment(row, self.outlet)

    def example_vendor(self) -> Any:
        """The fake Midtrans, holding the demo's orders at this outlet (for the simulator)."""
        from . import fake  # only the demo and tests need it

        return fake.MidtransFake(
            server_key=self.settings.server_key[0].get_secret_value(),
            orders=fake.demo_ledger(self.outlet.id),
            outlet=self.outlet.id,
        )


async def _first_known(clients: Sequence[MidtransClient], order_id: str) -> dict[str, Any] | None:
    """The order's status from the first server key's account that knows it."""
    for client in clients:
        body = await client.status(order_id)
        if body is not None:
            return body
    return None
