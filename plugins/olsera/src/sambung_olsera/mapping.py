"""Olsera closed orders → unified records. Pure: no I/O, no asyncio.

Fields (VENDORS.md): `id, order_no, order_amount, total_amount, is_paid`, money as strings
(`"1799000.00"`), timestamps `YYYY-MM-DD HH:MM:SS` without a zone. Which zone is [weak]: UTC in
`created_time`/`updated_time`, local in the `f…` twins; the connector's `naive_times` setting
says which to trust (default `utc`). Unpaid orders are not sales yet and map to nothing.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from sambung.connectors import Outlet
from sambung.models import LineItem, Transaction
from sambung.parse import amount, each, optional_text, require, text, timestamp

SOURCE_SYSTEM = "olsera"
UTC_ZONE = ZoneInfo("UTC")


def to_records(row: Any, outlet: Outlet, *, naive_times: str = "utc") -> list[Transaction]:
    """One closed order → its sale, or nothing when it is not paid."""
    if not row.get("is_paid", True) or str(row.get("is_paid")) in ("0", "false"):
        return []
    zone = UTC_ZONE if naive_times == "utc" else outlet.timezone
    occurred_at = timestamp(require(row, "created_time"), zone, "created_time")
    updated = row.get("updated_time")
    updated_at = timestamp(updated, zone, "updated_time") if updated else occurred_at
    total = amount(row, "total_amount")
    subtotal = amount(row, "order_amount")
    tax = amount(row, "tax_amount", required=False)
    discount = amount(row, "discount_amount", required=False)
    service_charge = amount(row, "service_charge_amount", required=False)
    items = tuple(
        LineItem(
            sku=optional_text(item, "product_sku", at=at),
            name=text(require(item, "product_name", at=at), f"{at}.product_name"),
            quantity=amount(item, "qty", at=at),
            unit_price=amount(item, "price", at=at),
            discount=amount(item, "discount", required=False, at=at),
            total=amount(item, "amount", at=at),
        )
        for item, at in each(row, "items")
    )
    label = optional_text(row, "payment_type")
    return [
        Transaction.rung_up(
            outlet=outlet.id,
            source_system=SOURCE_SYSTEM,
            external_id=text(require(row, "id"), "id"),
            source_updated_at=updated_at,
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
    ]
