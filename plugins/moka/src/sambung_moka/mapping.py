"""Moka webhook payloads → unified records. Pure: no I/O, no asyncio.

Moka wraps every event as `{"header": {timestamp, event_name, event_id, outlet_id, version},
"body": {...}}` (see VENDORS.md). Every field path in an `InvalidRecord` is the dotted path in
that body (`body.transaction.total_collected`, `body.transaction.items.0.price`).

Decisions:

- `moka.transaction.created` and `.updated` map to the same sale, keyed by the transaction id.
  Moka delivers events out of order, so each record carries `source_updated_at` (the
  transaction's `updated_at`, else the header's `timestamp`) and core never lets an older
  version overwrite a newer one.
- `moka.transaction.refunded` maps to a *separate* refund transaction, external id
  `<id>:refund`, `reverses_external_id=<id>`, with the amounts copied as positive numbers and
  `occurred_at` set to the header's timestamp (when the refund happened). The original sale is
  left untouched and keeps its own business date, which is what the books need: a refund on
  Monday of Saturday's sale belongs to Monday. A transaction refunded twice (partial refunds)
  still yields one refund record, the latest version winning; Moka's webhook body does not say
  which part was refunded.
- `moka.item.added|updated|deleted` are acknowledged with no records: the catalogue is not
  modelled yet, and a 2xx stops Moka from retrying them.
- The header's `event_id` is the dedup key, so a redelivery of one event is recognised even if
  Moka re-serialises its body.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from sambung.plugin import (
    InvalidRecord,
    LineItem,
    Outlet,
    Record,
    Transaction,
    TransactionType,
    WebhookEvent,
    amount,
    each,
    get,
    mapping,
    money,
    optional_money,
    optional_text,
    require,
    text,
    timestamp,
)

SOURCE_SYSTEM = "moka"
SALE_EVENTS = frozenset({"moka.transaction.created", "moka.transaction.updated"})
REFUND_EVENT = "moka.transaction.refunded"
ITEM_EVENTS = frozenset({"moka.item.added", "moka.item.updated", "moka.item.deleted"})

TX = "body.transaction"


def to_event(payload: Any, outlet: Outlet, *, moka_outlet_id: str | None = None) -> WebhookEvent:
    """A whole Moka webhook body → its event name, records and dedup key."""
    header = mapping(payload, "header")
    event_name = text(require(header, "event_name", at="header"), "header.event_name")
    if moka_outlet_id is not None:
        sent = text(require(header, "outlet_id", at="header"), "header.outlet_id")
        if sent != moka_outlet_id:
            raise InvalidRecord(
                f"event for Moka outlet {sent}, expected {moka_outlet_id}",
                field="header.outlet_id",
            )
    records: list[Record]
    if event_name in SALE_EVENTS:
        records = [to_transaction(payload, outlet)]
    elif event_name == REFUND_EVENT:
        records = [to_refund(payload, outlet)]
    elif event_name in ITEM_EVENTS:
        records = []
    else:
        raise InvalidRecord(f"unknown event type {event_name!r}", field="header.event_name")
    return WebhookEvent(
        event_type=event_name,
        records=records,
        dedup_key=optional_text(header, "event_id", at="header"),
    )


def to_transaction(payload: Mapping[str, Any], outlet: Outlet) -> Transaction:
    """A `moka.transaction.created|updated` event → the sale."""
    tx = mapping(payload, TX)
    occurred_at = timestamp(require(tx, "date", at=TX), outlet.timezone, f"{TX}.date")
    return _transaction(payload, tx, outlet, occurred_at, refund=False)


def to_refund(payload: Mapping[str, Any], outlet: Outlet) -> Transaction:
    """A `moka.transaction.refunded` event → a refund reversing the sale (see the module doc)."""
    refunded_at = timestamp(
        require(payload, "header.timestamp"), outlet.timezone, "header.timestamp"
    )
    return _transaction(payload, mapping(payload, TX), outlet, refunded_at, refund=True)


def _transaction(
    payload: Mapping[str, Any],
    tx: Mapping[str, Any],
    outlet: Outlet,
    occurred_at: datetime,
    *,
    refund: bool,
) -> Transaction:
    sale_id = text(require(tx, "id", at=TX), f"{TX}.id")
    total = _amount(tx, "total_collected", TX, refund)
    subtotal = _amount(tx, "subtotal", TX, refund)
    discount = _amount(tx, "total_discounts", TX, refund, required=False)
    service_charge = _amount(tx, "total_gratuities", TX, refund, required=False)
    tax = _amount(tx, "total_taxes", TX, refund, required=False)
    label = optional_text(tx, "payment_type", at=TX)
    return Transaction.rung_up(
        outlet=outlet.id,
        source_system=SOURCE_SYSTEM,
        external_id=f"{sale_id}:refund" if refund else sale_id,
        type=TransactionType.REFUND if refund else TransactionType.SALE,
        reverses_external_id=sale_id if refund else None,
        source_updated_at=_version(payload, tx, outlet),
        occurred_at=occurred_at,
        tz=outlet.timezone,
        subtotal=subtotal,
        discount=discount,
        service_charge=service_charge,
        tax=tax,
        total=total,
        payment_label=label,
        items=tuple(_line_item(item, at, refund) for item, at in each(tx, "items", at=TX)),
    )


def _version(payload: Mapping[str, Any], tx: Mapping[str, Any], outlet: Outlet) -> datetime:
    updated_at = get(tx, "updated_at")
    if updated_at is not None:
        return timestamp(updated_at, outlet.timezone, f"{TX}.updated_at")
    return timestamp(require(payload, "header.timestamp"), outlet.timezone, "header.timestamp")


def _line_item(item: Any, at: str, refund: bool) -> LineItem:
    name = text(require(item, "name", at=at), f"{at}.name")
    variant = optional_text(item, "variant_name", at=at)
    quantity = _amount(item, "quantity", at, refund)
    price = _amount(item, "price", at, refund)
    total = _amount(item, "total_price", at, refund)
    # Modifiers can push total_price above price * quantity; only a shortfall is a discount.
    shortfall = price * quantity - total
    if shortfall > 0:
        discount = shortfall
    elif get(item, "discount_amount") is not None:
        discount = _amount(item, "discount_amount", at, refund)
    else:
        discount = _amount(item, "discount", at, refund, required=False)
    return LineItem(
        sku=optional_text(item, "sku", at=at) or optional_text(item, "variant_id", at=at),
        name=f"{name} - {variant}" if variant and variant != name else name,
        quantity=quantity,
        unit_price=price,
        discount=discount,
        total=total,
    )


def _amount(node: Any, key: str, at: str, refund: bool, *, required: bool = True) -> Decimal:
    if refund:
        # Whatever sign Moka gives a refund's amounts, ours are positive: the type is the direction.
        path = f"{at}.{key}"
        value = (
            money(require(node, key, at=at), path) if required else optional_money(node, key, at=at)
        )
        return abs(value)
    return amount(node, key, required=required, at=at)


PAYMENT = "payment"


def payment_to_records(row: Mapping[str, Any], outlet: Outlet) -> list[Transaction]:
    """A payment of `get_latest_transactions` (poll mode) → the sale, and its refund if any.

    A refunded payment (`is_refunded`, or a `total_refund`/`refund_amount` above zero) also
    yields the refund record `<id>:refund` (as from webhooks), dated at the payment's
    `updated_at`, for the refunded amount (a partial refund is not the whole sale); the sale
    keeps its own date.
    """
    sale = payment_to_transaction(row, outlet, refund=False)
    if row.get("is_refunded") or _refunded(row) > 0:
        return [sale, payment_to_transaction(row, outlet, refund=True)]
    return [sale]


def payment_to_transaction(
    row: Mapping[str, Any], outlet: Outlet, *, refund: bool = False
) -> Transaction:
    """A payment of `get_latest_transactions` → the sale, or (`refund`) the refund of it.

    `transaction_date` + `transaction_time` (separate fields, the outlet's local day and time)
    is when it happened, else `created_at`; `updated_at` orders versions.
    """
    occurred_at = _occurred_at(row, outlet)
    updated_at = timestamp(require(row, "updated_at"), outlet.timezone, "updated_at")
    sale_id = text(require(row, "id"), "id")
    total = amount(row, "total_collected")
    subtotal = amount(row, "subtotal")
    discount = amount(row, "discounts", required=False)
    service_charge = amount(row, "gratuities", required=False)
    tax = amount(row, "taxes", required=False)
    label = optional_text(row, "payment_type_label") or optional_text(row, "payment_type")
    items = []
    for item, at in each(row, "checkouts"):
        quantity = amount(item, "quantity", at=at)
        price = amount(item, "item_price", at=at)
        items.append(
            LineItem(
                sku=optional_text(item, "sku", at=at),
                name=text(require(item, "item_name", at=at), f"{at}.item_name"),
                quantity=quantity,
                unit_price=price,
                discount=amount(item, "discount_amount", required=False, at=at),
                total=amount(item, "total_price", at=at),
            )
        )
    refunded = _refunded(row) if refund else Decimal(0)
    if refunded and refunded != total:
        # A partial refund: only the amount given back, without guessing which lines.
        items, subtotal, discount, service_charge, tax, total = [], refunded, _Z, _Z, _Z, refunded
    refunded = _refunded(row) if refund else Decimal(0)
    if refunded and refunded != total:
        # A partial refund: only the amount given back, without guessing which lines.
        items, subtotal, discount, service_charge, tax, total = [], refunded, _Z, _Z, _Z, refunded
    return Transaction.rung_up(
        outlet=outlet.id,
        source_system=SOURCE_SYSTEM,
        external_id=f"{sale_id}:refund" if refund else sale_id,
        type=TransactionType.REFUND if refund else TransactionType.SALE,
        reverses_external_id=sale_id if refund else None,
        source_updated_at=updated_at,
        occurred_at=updated_at if refund else occurred_at,
        tz=outlet.timezone,
        subtotal=subtotal,
        discount=discount,
        service_charge=service_charge,
        tax=tax,
        total=total,
        payment_label=label,
        items=tuple(items),
    )


_Z = Decimal(0)


def _refunded(row: Mapping[str, Any]) -> Decimal:
    """The amount given back on a payment (`total_refund`, else `refund_amount`), or zero."""
    for key in ("total_refund", "refund_amount"):
        if row.get(key) is not None:
            value = amount(row, key)
            if value:
                return value
    return _Z


def _occurred_at(row: Mapping[str, Any], outlet: Outlet) -> datetime:
    """`transaction_date`'s day at `transaction_time` in the outlet's zone; either alone is
    not the instant (a date alone is local midnight), so without the time, `created_at`."""
    day = optional_text(row, "transaction_date")
    time_of_day = optional_text(row, "transaction_time")
    if day and time_of_day:
        if " " in time_of_day or "T" in time_of_day:
            return timestamp(time_of_day, outlet.timezone, "transaction_time")
        date_part = day.replace("T", " ").split(" ")[0]
        return timestamp(f"{date_part} {time_of_day}", outlet.timezone, "transaction_time")
    if row.get("created_at") is not None:
        return timestamp(row["created_at"], outlet.timezone, "created_at")
    return timestamp(require(row, "transaction_date"), outlet.timezone, "transaction_date")
