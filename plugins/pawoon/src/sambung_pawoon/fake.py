"""What Pawoon sends, generated: example webhook bodies for the simulator and tests."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from sambung.testing.fakes import MENU, basket


def webhook_body(sequence: int, now: datetime) -> dict[str, Any]:
    """A `transaction.created` (or, every fifth, an `inventory.updated`) body at `now` (local)."""
    if sequence % 5 == 0:
        item = MENU[sequence % len(MENU)]
        return {
            "event_type": "inventory.updated",
            "data": {
                "product_id": f"P-{item.sku}",
                "sku": item.sku,
                "name": item.name,
                "stock": 40 - sequence % 37,
                "unit": "pcs",
                "updated_at": now.strftime("%Y-%m-%d %H:%M:%S"),
            },
        }
    sale = basket(sequence)
    return {
        "event_type": "transaction.created",
        "data": {
            "transaction_id": f"TRX-{now:%Y%m%d}-{sequence:06d}",
            # Pawoon sends zone-less device time: the outlet's local clock.
            "timestamp": now.strftime("%Y-%m-%d %H:%M:%S"),
            "total": int(sale.total),
            "tax": int(sale.tax),
            "service_charge": int(sale.service_charge),
            "payment_method": sale.payment_label,
            "items": [
                {
                    "sku": line.item.sku,
                    "name": line.item.name,
                    "qty": line.quantity,
                    "price": int(line.item.price),
                }
                for line in sale.lines
            ],
        },
    }


def webhook_bytes(sequence: int, now: datetime) -> bytes:
    """`webhook_body` serialised as Pawoon would post it."""
    return json.dumps(webhook_body(sequence, now)).encode()


def export_csv(sequence: int, now: datetime, *, rows: int = 8, bad_row: bool = False) -> bytes:
    """A Pawoon CSV export as a back office saves it (`;`, `Rp 27.500`); with `bad_row`, one
    row carries a total no one can read, so the simulator shows a file landing in `failed/`."""
    lines = ["Date;Transaction ID;Total;Tax;Items"]
    for n in range(rows):
        sale = basket(sequence * 100 + n)
        total = _rupiah(sale.total)
        if bad_row and n == rows // 2:
            total = "Rp 27.500,-"
        items = ", ".join(f"{line.item.name} x{line.quantity}" for line in sale.lines)
        lines.append(
            f"{now:%Y-%m-%d %H:%M:%S};CSV-{now:%Y%m%d}-{sequence:04d}-{n:02d};{total};"
            f"{_rupiah(sale.tax)};{items}"
        )
    return ("\n".join(lines) + "\n").encode()


def _rupiah(amount: Decimal) -> str:
    """`Rp 27.500`, as Indonesian back offices print whole Rupiah."""
    return f"Rp {int(amount):,}".replace(",", ".")
