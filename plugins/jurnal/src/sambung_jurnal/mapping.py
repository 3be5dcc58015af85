"""Pure mapping: an invoice draft → the JSON body of Jurnal's `POST /sales_invoices`."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from sambung.plugin import AccountingSinkSettings, InvoiceDraft


def amount(value: Decimal) -> str:
    """An amount as exact decimal text (Jurnal reads numbers in strings; never a float)."""
    return format(value, "f")


def invoice_body(draft: InvoiceDraft, settings: AccountingSinkSettings) -> dict[str, Any]:
    """The `sales_invoice` of one draft; `custom_id` (Jurnal's idempotency key) and
    `transaction_no` are both the draft's deterministic number.

    Lines go at their unit price with no percentage discount (Jurnal's `discount` is a
    percentage, which cannot hold a rupiah discount exactly); every discount is one negative
    line of the `charge_items.discount` product, and service charge, tax and rounding lines of
    theirs, so the invoice adds up to the till's total exactly.
    """
    lines: list[dict[str, Any]] = [
        {
            "product_name": settings.item_code(line.sku, line.name),
            "description": line.name,
            "quantity": amount(line.quantity),
            "rate": amount(line.unit_price),
            "discount": "0",
        }
        for line in draft.lines
    ]
    line_discounts = sum((line.discount for line in draft.lines), Decimal(0))
    charges = dict(draft.charges())
    if line_discounts:
        charges["discount"] = charges.get("discount", Decimal(0)) - line_discounts
    for charge in ("service_charge", "tax", "rounding", "discount"):
        if charges.get(charge):
            lines.append(
                {
                    "product_name": settings.charge_code(charge),
                    "quantity": "1",
                    "rate": amount(charges[charge]),
                    "discount": "0",
                }
            )
    return {
        "sales_invoice": {
            "transaction_date": draft.business_date.isoformat(),
            "custom_id": draft.number,
            "transaction_no": draft.number,
            "person_name": settings.customer_code(draft.outlet),
            "memo": draft.description,
            "transaction_lines_attributes": lines,
        }
    }


def encode(body: dict[str, Any]) -> bytes:
    """The body's bytes, as signed (the Digest covers exactly these)."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
