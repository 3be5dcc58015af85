"""Olsera closed orders → unified records. Pure: no I/O, no asyncio.

Fields (VENDORS.md, corrected): list rows carry `id, order_no, order_date, order_time,
total_amount, order_amount, is_paid, status` and no lines; the lines come from
`closeorder/detail?id=` as `orderitems[{product_id, product_name, product_sku, qty, price,
amount, discount, addon_price}]`. Money as strings (`"1799000.00"`). The sale's instant is
`order_date`'s day with `order_time` (the till's local clock) in the outlet's zone; never
`created_time`/`modified_time`, which are server times in another zone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sambung.plugin import (
    InvalidRecord,
    LineItem,
    Outlet,
    Transaction,
    amount,
    optional_text,
    quantity,
    require,
    text,
    timestamp,
)

SOURCE_SYSTEM = "olsera"
COMPLETED = "Z"


def is_sale(row: Any) -> bool:
    """Whether a closed-order row is a completed, paid sale (else it maps to nothing)."""
    if str(row.get("is_paid", 1)).lower() in ("0", "false"):
        return False
    status = row.get("status")
    return status is None or str(status).upper() == COMPLETED


def order_instant(row: Any, outlet: Outlet) -> datetime:
    """`order_date`'s day at `order_time`, read in the outlet's zone."""
    day_text = text(require(row, "order_date"), "order_date")
    time_text = text(require(row, "order_time"), "order_time")
    if " " in time_text or "T" in time_text:  # a full local datetime in order_time
        return timestamp(time_text, outlet.timezone, "order_time")
    day = day_text.replace("T", " ").split(" ")[0]
    try:
        datetime.strptime(day, "%Y-%m-%d")
    except ValueError:
        raise InvalidRecord(f"not a date: {day_text!r}", field="order_date") from None
    return timestamp(f"{day} {time_text}", outlet.timezone, "order_time")


def to_records(row: Any, items: list[Any], outlet: Outlet) -> list[Transaction]:
    """One closed order and its detail's `orderitems` → its sale, or nothing when unpaid."""
    if not is_sale(row):
        return []
    occurred_at = order_instant(row, outlet)
    lines = tuple(_line(item, f"orderitems.{n}") for n, item in enumerate(items))
    if not lines:
        raise InvalidRecord("a closed order without lines", field="orderitems")
    return [
        Transaction.rung_up(
            outlet=outlet.id,
            source_system=SOURCE_SYSTEM,
            external_id=text(require(row, "id"), "id"),
            source_updated_at=occurred_at,
            occurred_at=occurred_at,
            tz=outlet.timezone,
            discount=amount(row, "discount_amount", required=False),
            service_charge=amount(row, "service_charge_amount", required=False),
            tax=amount(row, "tax_amount", required=False),
            total=amount(row, "total_amount"),
            payment_label=optional_text(row, "payment_type"),
            items=lines,
        )
    ]


def _line(item: Any, at: str) -> LineItem:
    qty = quantity(require(item, "qty", at=at), f"{at}.qty")
    price = amount(item, "price", at=at) + amount(item, "addon_price", required=False, at=at)
    discount = amount(item, "discount", required=False, at=at)
    given = item.get("amount") if isinstance(item, dict) else None
    total = amount(item, "amount", at=at) if given is not None else qty * price - discount
    return LineItem(
        sku=optional_text(item, "product_sku", at=at) or optional_text(item, "product_id", at=at),
        name=text(require(item, "product_name", at=at), f"{at}.product_name"),
        quantity=qty,
        unit_price=price,
        discount=discount,
        total=total,
    )
