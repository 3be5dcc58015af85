"""Midtrans HTTP notifications → `Payment` records, and their signature. Pure.

Fields (VENDORS.md): `transaction_time, transaction_status, transaction_id, status_code,
signature_key, payment_type, order_id, gross_amount` (a string), `fraud_status, currency`, and
per channel extras (`va_numbers[{bank}]`, `issuer`/`acquirer`, `bank`, `settlement_time`…).

Statuses never go back. Each version's `source_updated_at` is the transaction's
`transaction_time` plus its lifecycle rank in milliseconds, so the store answers a late
`pending` after `settlement` as stale, whatever order notifications arrive in. The documented
reversals after settlement (`deny`, `refund`, `partial_refund`, `chargeback`,
`partial_chargeback`) rank above it: they are new facts, not stale ones.

A Get Status answer carries the same fields, so `to_payment` maps it too; gap healing also
needs to know which order id a POS sale names (`sale_order_id`, from a configured template).
"""

from __future__ import annotations

import hashlib
import hmac
import string
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import SecretStr
from sambung.plugin import (
    InvalidRecord,
    Outlet,
    Payment,
    PaymentStatus,
    SignatureError,
    each,
    money,
    optional_text,
    optional_timestamp,
    require,
    text,
    timestamp,
)

SOURCE_SYSTEM = "midtrans"
# Midtrans writes its times zone-less in Jakarta time, wherever the outlet is.
MIDTRANS_ZONE = ZoneInfo("Asia/Jakarta")

# Lifecycle rank: a version of a lower rank never replaces one of a higher rank.
RANK: dict[str, int] = {
    "pending": 0,
    "authorize": 1,
    "capture:challenge": 2,
    "capture": 3,
    "expire": 4,
    "cancel": 4,
    "failure": 4,
    "settlement": 5,
    # Reversals, documented after settlement: new facts.
    "deny": 6,
    "partial_refund": 7,
    "refund": 8,
    "partial_chargeback": 9,
    "chargeback": 10,
}
STATUS: dict[str, PaymentStatus] = {
    "pending": PaymentStatus.PENDING,
    "authorize": PaymentStatus.PENDING,
    "capture:challenge": PaymentStatus.PENDING,
    "capture": PaymentStatus.PAID,
    "settlement": PaymentStatus.PAID,
    "expire": PaymentStatus.EXPIRED,
    "cancel": PaymentStatus.FAILED,
    "failure": PaymentStatus.FAILED,
    "deny": PaymentStatus.FAILED,
    "partial_refund": PaymentStatus.REFUNDED,
    "refund": PaymentStatus.REFUNDED,
    "partial_chargeback": PaymentStatus.REFUNDED,
    "chargeback": PaymentStatus.REFUNDED,
}


def signature(order_id: str, status_code: str, gross_amount: str, server_key: str) -> str:
    """Midtrans's `signature_key`: SHA-512 hex of the four strings, concatenated as sent."""
    return hashlib.sha512(f"{order_id}{status_code}{gross_amount}{server_key}".encode()).hexdigest()


def verify(body: Any, server_keys: tuple[SecretStr, ...]) -> None:
    """Raise `SignatureError` unless `signature_key` matches one of the server keys."""
    if not isinstance(body, dict):
        raise SignatureError("notification is not a JSON object")
    given = body.get("signature_key")
    order_id, status_code, gross = (
        body.get(k) for k in ("order_id", "status_code", "gross_amount")
    )
    if not (
        isinstance(given, str)
        and given
        and isinstance(order_id, str)
        and isinstance(status_code, str)
        and isinstance(gross, str)
    ):
        raise SignatureError("missing signature_key (or order_id, status_code, gross_amount)")
    # A hex digest is ASCII, and Midtrans signs real text: anything else is refused here, where
    # compare_digest (non-ASCII) or the UTF-8 encoding (a lone surrogate) would raise.
    if not given.isascii():
        raise SignatureError("signature_key is not hex")
    matched = False
    for key in server_keys:
        try:
            expected = signature(order_id, status_code, gross, key.get_secret_value())
        except UnicodeEncodeError:
            raise SignatureError("order_id, status_code or gross_amount is not text") from None
        matched |= hmac.compare_digest(expected, given.lower())
    if not matched:
        raise SignatureError("signature_key does not match")


def lifecycle(body: Any) -> str:
    """The notification's place in the lifecycle (`capture:challenge` for a held capture)."""
    status = text(require(body, "transaction_status"), "transaction_status").lower()
    fraud = (optional_text(body, "fraud_status") or "").lower()
    if status == "capture" and fraud == "challenge":
        return "capture:challenge"
    if status == "capture" and fraud == "deny":
        return "deny"
    if status not in RANK:
        known = ", ".join(sorted({s.split(":")[0] for s in RANK}))
        raise InvalidRecord(
            f"unknown transaction_status {status!r} (known: {known})", field="transaction_status"
        )
    return status


def dedup_key(body: Any) -> str:
    """One delivery's identity: the order, its status and the amount it states."""
    order = text(require(body, "order_id"), "order_id")
    refunded = optional_text(body, "refund_amount") or ""
    return f"midtrans:{order}:{lifecycle(body)}:{refunded}"


def channel(body: Any) -> str | None:
    """`payment_type`, with the bank or wallet behind it when the body says."""
    kind = optional_text(body, "payment_type")
    if kind is None:
        return None
    detail = None
    for item, at in each(body, "va_numbers"):
        detail = optional_text(item, "bank", at=at)
        break
    if detail is None and body.get("permata_va_number"):
        detail = "permata"
    detail = (
        detail
        or optional_text(body, "issuer")
        or optional_text(body, "acquirer")
        or optional_text(body, "bank")
        or optional_text(body, "store")
    )
    return f"{kind}:{detail.lower()}" if detail else kind


def to_payment(body: Any, outlet: Outlet) -> Payment:
    """One Midtrans notification (or Get Status answer) → a payment at `outlet`."""
    step = lifecycle(body)
    order_id = text(require(body, "order_id"), "order_id")
    happened = timestamp(require(body, "transaction_time"), MIDTRANS_ZONE, "transaction_time")
    status = STATUS[step]
    paid_at: datetime | None = None
    if status is PaymentStatus.PAID or step in ("partial_refund", "refund"):
        paid_at = optional_timestamp(body, "settlement_time", MIDTRANS_ZONE) or happened
    occurred_at = paid_at or happened
    return Payment(
        outlet=outlet.id,
        source_system=SOURCE_SYSTEM,
        external_id=order_id,
        source_updated_at=version(happened, step),
        reference=order_id,
        amount=money(require(body, "gross_amount"), "gross_amount"),
        currency=(optional_text(body, "currency") or "IDR").upper(),
        status=status,
        channel=channel(body),
        paid_at=paid_at,
        occurred_at=occurred_at,
        business_date=occurred_at.astimezone(outlet.timezone).date(),
    )


def version(happened: datetime, step: str) -> datetime:
    """The order versions are compared in: the transaction's time plus its lifecycle rank."""
    return happened + timedelta(milliseconds=RANK[step])


# What an `order_id` template may name of a stored sale (its unified fields).
SALE_FIELDS = frozenset({"external_id", "outlet", "source_system"})


def check_order_template(template: str) -> str:
    """`template` if it names only `SALE_FIELDS` (`{external_id}`, `PW-{external_id}`), and at
    least one of them; else `ValueError` saying what it may name."""
    try:
        named = {field for _, field, _, _ in string.Formatter().parse(template) if field}
    except ValueError as err:
        raise ValueError(f"order_id template {template!r}: {err}") from None
    allowed = ", ".join("{" + f + "}" for f in sorted(SALE_FIELDS))
    if not named or not named <= SALE_FIELDS:
        raise ValueError(f"order_id template {template!r} may name only {allowed}")
    return template


def sale_order_id(sale: Mapping[str, Any], template: str) -> str | None:
    """The Midtrans order id a stored sale (its unified JSON) names, or None if it has no
    value for a field the template uses."""
    values: dict[str, str] = {}
    for _, field, _, _ in string.Formatter().parse(template):
        if field:
            value = sale.get(field)
            if not isinstance(value, str) or not value.strip():
                return None
            values[field] = value.strip()
    return template.format(**values).strip() or None
