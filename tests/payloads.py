"""Signed vendor requests for the end-to-end tests."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from sambung.auth.signing import sign_hex
from sambung.testing.fakes import json_bytes

PAWOON_SECRET = "pawoon-e2e-secret-7f3a"
MOKA_SECRET = "moka-e2e-secret-91bd"
HELLO_SECRET = "hello-e2e-secret-55c0"
WEBHOOKS = "/api/v1/integrations/webhooks"


def pawoon_sale(transaction_id: str | None, total: int | str = 27500, **changes: Any) -> bytes:
    """A Pawoon `transaction.created` body (seed format)."""
    data = {
        "transaction_id": transaction_id,
        "total": total,
        "tax": 2500,
        "timestamp": "2026-11-26 20:15:00",
        "payment_method": "QRIS",
        "items": [{"name": "Es Kopi Susu Gula Aren", "qty": 1, "price": 25000}],
        **changes,
    }
    return json.dumps({"event_type": "transaction.created", "data": data}).encode()


def moka_event(
    event_id: str,
    transaction_id: int,
    *,
    event: str = "moka.transaction.created",
    total: str = "55755.0125",
    updated_at: str = "2026-11-26T20:15:00+07:00",
) -> bytes:
    """A Moka webhook envelope; amounts are raw JSON numbers with their fractions, as Moka sends."""
    transaction = {
        "id": transaction_id,
        "date": "2026-11-26T20:10:00+07:00",
        "updated_at": updated_at,
        "subtotal": 50000,
        "total_collected": Decimal(total),
        "total_discounts": 0,
        "total_gratuities": 5000,
        "total_taxes": Decimal("755.0125"),
        "total_gross_sales": 50000,
        "total_net_sales": 50000,
        "payment_no": f"P-{transaction_id}",
        "payment_type": "GoPay",
        "items": [
            {
                "id": 1,
                "variant_id": 11,
                "variant_name": "Large",
                "name": "Kopi Susu",
                "price": 25000,
                "quantity": 2,
                "category_name": "Kopi",
                "gross_sales": 50000,
                "net_sales": 50000,
                "total_price": 50000,
                "modifiers": [],
            }
        ],
        "payment_taxes": [],
        "payment_gratuities": [],
        "payment_discounts": [],
    }
    header = {
        "timestamp": updated_at,
        "event_name": event,
        "event_id": event_id,
        "outlet_id": "41230",
        "version": 1,
    }
    return json_bytes({"header": header, "body": {"transaction": transaction}})


def hello_sale(sale_id: str, total: int = 15000) -> bytes:
    """A sale for the third-party `hello` connector."""
    return json.dumps(
        {"id": sale_id, "total": total, "at": "2026-11-26 09:00:00", "paid_with": "Tunai"}
    ).encode()


def signed(body: bytes, secret: str, header: str) -> dict[str, str]:
    """Headers carrying the hex HMAC-SHA256 of `body`."""
    return {header: sign_hex(secret, body)}
