"""Pawoon webhook payloads → unified records. Pure: no I/O, no asyncio.

Pawoon's webhook format is known only from our seed document (see VENDORS.md): an envelope
`{"event_type": ..., "data": {...}}` carrying `transaction.created` or `inventory.updated`.
Every field path in an `InvalidRecord` is the dotted path in the body Pawoon sent (`data.total`,
`data.items.1.qty`), so the 422 and the dead-letter entry say exactly what was wrong.

Amounts: a line's total is `qty * price - discount`; `subtotal` is the sum of line totals (after
item discounts); `discount` is the order-level `total_discount`. Indonesian tills round the
amount due, so whatever `total` holds beyond `subtotal - discount + service_charge + tax` is the
`rounding` line (usually a few hundred Rupiah either way).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sambung.plugin import (
    InvalidRecord,
    InventoryLevel,
    LineItem,
    Outlet,
    Record,
    Transaction,
    WebhookEvent,
    amount,
    business_date,
    each,
    mapping,
    optional_text,
    optional_timestamp,
    quantity,
    require,
    text,
    timestamp,
)

SOURCE_SYSTEM = "pawoon"


def to_event(payload: Any, outlet: Outlet) -> WebhookEvent:
    """A whole Pawoon webhook body → its event type and records."""
    event_type = text(require(payload, "event_type"), "event_type")
    records: list[Record]
    if event_type == "transaction.created":
        records = [to_transaction(payload, outlet)]
    elif event_type == "inventory.updated":
        records = [to_inventory_level(payload, outlet)]
    else:
        raise InvalidRecord(f"unknown event type {event_type!r}", field="event_type")
    return WebhookEvent(event_type=event_type, records=records)


def to_transaction(payload: Mapping[str, Any], outlet: Outlet) -> Transaction:
    """A `transaction.created` body → a sale."""
    data = mapping(payload, "data")
    occurred_at = timestamp(
        require(data, "timestamp", at="data"), outlet.timezone, "data.timestamp"
    )
    total = amount(data, "total", at="data")
    tax = amount(data, "tax", at="data")
    discount = amount(data, "total_discount", required=False, at="data")
    service_charge = amount(data, "service_charge", required=False, at="data")
    items = tuple(_line_item(item, at) for item, at in each(data, "items", at="data"))
    label = optional_text(data, "payment_method", at="data")
    return Transaction.rung_up(
        outlet=outlet.id,
        source_system=SOURCE_SYSTEM,
        external_id=text(require(data, "transaction_id", at="data"), "data.transaction_id"),
        source_updated_at=optional_timestamp(data, "updated_at", outlet.timezone, at="data"),
        occurred_at=occurred_at,
        tz=outlet.timezone,
        discount=discount,
        service_charge=service_charge,
        tax=tax,
        total=total,
        payment_label=label,
        items=items,
    )


def to_inventory_level(payload: Mapping[str, Any], outlet: Outlet) -> InventoryLevel:
    """An `inventory.updated` body → the stock level of one product at the outlet."""
    data = mapping(payload, "data")
    updated_at = timestamp(
        require(data, "updated_at", at="data"), outlet.timezone, "data.updated_at"
    )
    return InventoryLevel(
        outlet=outlet.id,
        source_system=SOURCE_SYSTEM,
        external_id=text(require(data, "product_id", at="data"), "data.product_id"),
        source_updated_at=updated_at,
        sku=optional_text(data, "sku", at="data"),
        name=optional_text(data, "name", at="data"),
        # Not `amount`: stock may legitimately go negative when a till sells past zero.
        quantity=quantity(require(data, "stock", at="data"), "data.stock"),
        unit=optional_text(data, "unit", at="data"),
        occurred_at=updated_at,
        business_date=business_date(updated_at, outlet.timezone),
    )


def _line_item(item: Any, at: str) -> LineItem:
    qty = amount(item, "qty", at=at)
    price = amount(item, "price", at=at)
    discount = amount(item, "discount", required=False, at=at)
    return LineItem(
        sku=optional_text(item, "sku", at=at),
        name=text(require(item, "name", at=at), f"{at}.name"),
        quantity=qty,
        unit_price=price,
        discount=discount,
        total=qty * price - discount,
    )


def to_polled_transaction(row: Mapping[str, Any], outlet: Outlet) -> Transaction:
    """A row of `GET /transactions` (poll mode) → a sale.

    Fields as working integrations read them (VENDORS.md, corrected): `receipt_code`,
    `device_timestamp` (zone-less till time), `final_amount` (else `total_payment`),
    `total_tax`, `total_service`, `total_discount`, `sales_type_name`,
    `details[{product_id, product_name, qty, price, subtotal}]`, `payments[{method, amount}]`.
    These are not the webhook's names (`tax`, `items`, `payment_method`).
    """
    occurred_at = timestamp(require(row, "device_timestamp"), outlet.timezone, "device_timestamp")
    total_key = "final_amount" if row.get("final_amount") is not None else "total_payment"
    items = tuple(_detail(item, at) for item, at in each(row, "details"))
    return Transaction.rung_up(
        outlet=outlet.id,
        source_system=SOURCE_SYSTEM,
        external_id=text(require(row, _id_key(row)), _id_key(row)),
        source_updated_at=optional_timestamp(row, "updated_at", outlet.timezone) or occurred_at,
        occurred_at=occurred_at,
        tz=outlet.timezone,
        discount=amount(row, "total_discount", required=False),
        service_charge=amount(row, "total_service", required=False),
        tax=amount(row, "total_tax", required=False),
        total=amount(row, total_key),
        payment_label=_payment_label(row),
        items=items,
    )


def _id_key(row: Mapping[str, Any]) -> str:
    # The receipt code is what the till prints and what integrations key on; `id` if absent.
    return "receipt_code" if row.get("receipt_code") not in (None, "") else "id"


def _detail(item: Any, at: str) -> LineItem:
    qty = quantity(require(item, "qty", at=at), f"{at}.qty")
    price = amount(item, "price", at=at)
    discount = amount(item, "discount", required=False, at=at)
    subtotal = item.get("subtotal") if isinstance(item, Mapping) else None
    total = amount(item, "subtotal", at=at) if subtotal is not None else qty * price - discount
    name = optional_text(item, "product_name", at=at) or optional_text(item, "name", at=at)
    if name is None:
        raise InvalidRecord("field required", field=f"{at}.product_name")
    return LineItem(
        sku=optional_text(item, "product_sku", at=at) or optional_text(item, "product_id", at=at),
        name=name,
        quantity=qty,
        unit_price=price,
        discount=discount,
        total=total,
    )


def _payment_label(row: Mapping[str, Any]) -> str | None:
    """The method that paid most of the bill (a split bill keeps its largest part)."""
    best: tuple[Any, str] | None = None
    for payment, at in each(row, "payments"):
        label = None
        for key in ("method", "payment_method", "method_name", "name"):
            label = optional_text(payment, key, at=at)
            if label:
                break
        if label is None:
            continue
        paid = amount(payment, "amount", required=False, at=at)
        if best is None or paid > best[0]:
            best = (paid, label)
    return best[1] if best else optional_text(row, "payment_method")
