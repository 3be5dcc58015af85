"""What Moka sends, generated: example webhook envelopes for the simulator and tests."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sambung.testing.fakes import basket, json_bytes


def webhook_body(sequence: int, now: datetime, moka_outlet_id: str = "41230") -> dict[str, Any]:
    """Mostly `moka.transaction.created`; every fourth an `updated` of the sale before it (with
    a newer `updated_at`), every ninth a `refunded`. `now` must be aware (Moka sends offsets)."""
    event = "moka.transaction.created"
    transaction_id, updated_at = 900_000 + sequence, now
    if sequence % 9 == 0:
        event, transaction_id = "moka.transaction.refunded", 900_000 + sequence - 1
    elif sequence % 4 == 0:
        event, transaction_id = "moka.transaction.updated", 900_000 + sequence - 1
        updated_at = now + timedelta(seconds=1)
    sale = basket(transaction_id)
    if event == "moka.transaction.updated":
        sale = basket(transaction_id + 1_000_000)  # the cashier changed the order
    tax = (sale.subtotal * Decimal("0.0151")).quantize(Decimal("0.0001"))  # Moka's fractions
    total = sale.subtotal + sale.service_charge + tax
    transaction = {
        "id": transaction_id,
        "payment_no": f"P{transaction_id}",
        "date": (now - timedelta(minutes=1)).isoformat(timespec="seconds"),
        "updated_at": updated_at.isoformat(timespec="seconds"),
        "subtotal": sale.subtotal,
        "total_collected": total,
        "total_discounts": 0,
        "total_gratuities": sale.service_charge,
        "total_taxes": tax,
        "total_gross_sales": sale.subtotal,
        "total_net_sales": sale.subtotal,
        "payment_type": sale.payment_label,
        "items": [
            {
                "id": index + 1,
                "variant_id": 100 + index,
                "variant_name": "Regular",
                "name": line.item.name,
                "sku": line.item.sku,
                "price": line.item.price,
                "quantity": line.quantity,
                "category_name": "Menu",
                "gross_sales": line.total,
                "net_sales": line.total,
                "total_price": line.total,
                "modifiers": [],
            }
            for index, line in enumerate(sale.lines)
        ],
        "payment_taxes": [],
        "payment_gratuities": [],
        "payment_discounts": [],
    }
    header = {
        "timestamp": updated_at.isoformat(timespec="seconds"),
        "event_name": event,
        "event_id": f"evt-{sequence:08d}",
        "outlet_id": moka_outlet_id,
        "version": 1,
    }
    return {"header": header, "body": {"transaction": transaction}}


def webhook_bytes(sequence: int, now: datetime, moka_outlet_id: str = "41230") -> bytes:
    """`webhook_body` as Moka posts it: amounts as bare JSON numbers, fractions and all."""
    return json_bytes(webhook_body(sequence, now, moka_outlet_id))


def export_csv(sequence: int, now: datetime, *, rows: int = 8, bad_row: bool = False) -> bytes:
    """A Moka CSV export (`transaction_id, grand_total, created_at`); with `bad_row`, one row
    has no grand total, so the simulator shows a file landing in `failed/`."""
    lines = ["transaction_id,grand_total,created_at"]
    for n in range(rows):
        sale = basket(sequence * 100 + n)
        total = "" if bad_row and n == rows // 2 else f"{sale.total:.2f}"
        lines.append(f"MCSV-{now:%Y%m%d}-{sequence:04d}-{n:02d},{total},{now:%Y-%m-%d %H:%M}")
    return ("\n".join(lines) + "\n").encode()
