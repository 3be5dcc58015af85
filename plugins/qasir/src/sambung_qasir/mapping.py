"""Qasir transaction rows → unified records. Pure: no I/O, no asyncio.

The row shape follows the seed and our fake (Qasir's API is not public, see VENDORS.md):
`id, transaction_no, status (paid | refund | void), created_at, updated_at` (zone-less local
time, read in the outlet's timezone), `subtotal, discount, service_charge, tax, total`,
`payment_method`, `items[{sku, name, qty, price, discount, total}]`. Field paths in errors are
the row's own (`items.1.price`).
"""

from __future__ import annotations

from typing import Any

from sambung.plugin import (
    LineItem,
    Outlet,
    Transaction,
    TransactionType,
    amount,
    each,
    optional_text,
    optional_timestamp,
    require,
    text,
    timestamp,
)

SOURCE_SYSTEM = "qasir"
_TYPES = {"refund": TransactionType.REFUND, "void": TransactionType.VOID}


def to_transaction(row: Any, outlet: Outlet) -> Transaction:
    """One Qasir transaction row → a sale, refund or void."""
    occurred_at = timestamp(require(row, "created_at"), outlet.timezone, "created_at")
    items = tuple(_line_item(item, at) for item, at in each(row, "items"))
    total = amount(row, "total")
    tax = amount(row, "tax", required=False)
    discount = amount(row, "discount", required=False)
    service_charge = amount(row, "service_charge", required=False)
    subtotal = amount(row, "subtotal") if row.get("subtotal") is not None else None
    label = optional_text(row, "payment_method")
    status = (optional_text(row, "status") or "paid").lower()
    return Transaction.rung_up(
        outlet=outlet.id,
        source_system=SOURCE_SYSTEM,
        external_id=text(require(row, "id"), "id"),
        type=_TYPES.get(status, TransactionType.SALE),
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


def _line_item(item: Any, at: str) -> LineItem:
    qty = amount(item, "qty", at=at)
    price = amount(item, "price", at=at)
    discount = amount(item, "discount", required=False, at=at)
    total = (
        amount(item, "total", at=at) if item.get("total") is not None else qty * price - discount
    )
    return LineItem(
        sku=optional_text(item, "sku", at=at),
        name=text(require(item, "name", at=at), f"{at}.name"),
        quantity=qty,
        unit_price=price,
        discount=discount,
        total=total,
    )
