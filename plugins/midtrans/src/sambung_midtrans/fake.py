"""What Midtrans sends, generated: signed HTTP notifications for the simulator and tests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sambung.testing.fakes import basket, json_bytes

from .mapping import MIDTRANS_ZONE, signature

# (payment_type, extras) per channel, as Midtrans notifications carry them.
CHANNELS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("qris", {"issuer": "gopay", "acquirer": "gopay", "transaction_type": "on-us"}),
    ("bank_transfer", {"va_numbers": [{"bank": "bca", "va_number": "12345678901"}]}),
    ("credit_card", {"bank": "bni", "masked_card": "48111111-1114", "eci": "05"}),
    ("gopay", {}),
    ("echannel", {"bill_key": "000123456789", "biller_code": "70012"}),
)


def notification(
    sequence: int,
    at: datetime,
    status: str,
    server_key: str,
    *,
    outlet: str = "kemang",
    fraud_status: str = "accept",
) -> dict[str, Any]:
    """A signed notification for basket `sequence`'s order in `status`, created at `at`."""
    sale = basket(sequence)
    payment_type, extras = CHANNELS[sequence % len(CHANNELS)]
    order_id = f"{outlet}-mt-{sequence:06d}"
    gross = f"{sale.total:.2f}"
    status_code = {"pending": "201", "deny": "202", "expire": "407"}.get(status, "200")
    local = at.astimezone(MIDTRANS_ZONE).strftime("%Y-%m-%d %H:%M:%S")
    body: dict[str, Any] = {
        "transaction_time": local,
        "transaction_status": status,
        "transaction_id": f"9aed5972-5b6a-401e-894b-{sequence:012d}",
        "status_message": "midtrans payment notification",
        "status_code": status_code,
        "signature_key": signature(order_id, status_code, gross, server_key),
        "payment_type": payment_type,
        "order_id": order_id,
        "merchant_id": "G141532850",
        "gross_amount": gross,
        "fraud_status": fraud_status,
        "currency": "IDR",
        **extras,
    }
    if status == "settlement":
        body["settlement_time"] = local
    return body


def notification_bytes(*args: Any, **kw: Any) -> bytes:
    """`notification` serialised as Midtrans posts it."""
    return json_bytes(notification(*args, **kw))
