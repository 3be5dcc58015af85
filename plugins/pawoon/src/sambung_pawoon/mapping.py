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

from sambung.connectors import Outlet, WebhookEvent
from sambung.errors import InvalidRecord
from sambung.models import InventoryLevel, LineItem, Record, Transaction
from sambung.parse import (
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

    Fields as Pawoon's open API names them (VENDORS.md): `id`, `receipt_code`,
    `device_timestamp` (zone-less till time), `final_amount`, `subtotal`, `total_discount`,
    `tax`, `service_charge`, `payment_method`, `items[{sku, name, qty, price, discount}]`.
    """
    occurred_at = timestamp(require(row, "device_timestamp"), outlet.timezone, "device_timestamp")
    total = amount(row, "final_amount")
    tax = amount(row, "tax", required=False)
    discount = amount(row, "total_discount", required=False)
    service_charge = amount(row, "service_charge", required=False)
    items = tuple(_line_item(item, at) for item, at in each(row, "items"))
    subtotal = amount(row, "subtotal") if row.get("subtotal") is not None else None
    label = optional_text(row, "payment_method")
    return Transaction.rung_up(
        outlet=outlet.id,
        source_system=SOURCE_SYSTEM,
        external_id=text(require(row, "id"), "id"),
        source_updated_at=optional_timestamp(row, "updated_at", outlet.timezone) or occurred_at,
        occurred_at=occurred_at,
        tz=outlet.timezone,
        subtotal=subtotal,
        discount=discount,
        service_charge=service_charge,
        tax=tax,
        total=total,
        payment_label=label,
        items=items,
    )
