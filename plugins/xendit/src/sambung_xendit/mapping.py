"""Xendit invoices (callback bodies and `GET /v2/invoices` rows) → `Payment` records. Pure.

Both carry the same invoice object (VENDORS.md): `id, external_id, status (PENDING, PAID,
SETTLED, EXPIRED), amount, paid_amount, created, updated, paid_at, currency, payment_method,
payment_channel`, and on paid invoices `fees_paid_amount` / `adjusted_received_amount`.

Statuses never regress. Xendit retries callbacks for a day and delivers them out of order, and
the reconciliation poll reads the same invoices again, so every version carries a
`source_updated_at` that orders it, and the store ignores a version older than the one it holds
(a late `PENDING` after `PAID` is answered `stale`). The version is the time the invoice
entered its status, so that it follows the lifecycle `PENDING < EXPIRED < PAID < SETTLED`
whatever order the callbacks come in: `created` for PENDING and EXPIRED (an unpaid invoice has
changed nothing since it was issued), `updated` for PAID and SETTLED (always after `created`);
the status's rank in that order is added as microseconds to break ties (Xendit's times have
milliseconds, so this orders ties and nothing else).

EXPIRED versus PAID: Xendit neither takes payment on an expired invoice nor expires a paid one,
so a real invoice never has both. Should both arrive anyway, in either order, PAID wins: money
received outranks an expiry notice, and an expired invoice that is then paid is paid. (The
price: for an unpaid invoice the poll-lag metric counts from its creation.)
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sambung.plugin import (
    InvalidRecord,
    Outlet,
    Payment,
    PaymentStatus,
    amount,
    each,
    optional_text,
    optional_timestamp,
    require,
    text,
    timestamp,
)

SOURCE_SYSTEM = "xendit"

# Xendit's invoice statuses, in the order an invoice may move through them.
LIFECYCLE: dict[str, PaymentStatus] = {
    "PENDING": PaymentStatus.PENDING,
    "EXPIRED": PaymentStatus.EXPIRED,
    "PAID": PaymentStatus.PAID,
    "SETTLED": PaymentStatus.SETTLED,
}
_RANK = {name: rank for rank, name in enumerate(LIFECYCLE)}
_PAID = frozenset({"PAID", "SETTLED"})


def invoice_status(invoice: Any) -> str:
    """The invoice's Xendit status (`PAID`), checked against the ones we know."""
    status = text(require(invoice, "status"), "status").upper()
    if status not in LIFECYCLE:
        known = ", ".join(LIFECYCLE)
        raise InvalidRecord(f"unknown invoice status {status!r} (known: {known})", field="status")
    return status


def dedup_key(invoice: Any) -> str:
    """What identifies one callback: the invoice id and its status (Xendit's own advice)."""
    return f"invoice:{text(require(invoice, 'id'), 'id')}:{invoice_status(invoice)}"


def to_payment(invoice: Any, outlet: Outlet) -> Payment:
    """One Xendit invoice → a payment at `outlet`.

    `occurred_at` is when the money moved (`paid_at`) for a paid invoice, else when the invoice
    was issued (`created`); `business_date` is its local day. `amount` is what was paid
    (`paid_amount`, else the invoice `amount`); `fee` and
    `received_amount` come from `fee_and_received`.
    """
    tz = outlet.timezone
    status = invoice_status(invoice)
    created = timestamp(require(invoice, "created"), tz, "created")
    updated = optional_timestamp(invoice, "updated", tz) or created
    paid_at = optional_timestamp(invoice, "paid_at", tz) if status in _PAID else None
    paid = amount(invoice, "paid_amount") if invoice.get("paid_amount") is not None else None
    total = paid if paid is not None else amount(invoice, "amount")
    occurred_at = paid_at or created
    fee, received = fee_and_received(invoice, total)
    return Payment(
        outlet=outlet.id,
        source_system=SOURCE_SYSTEM,
        external_id=text(require(invoice, "id"), "id"),
        source_updated_at=version(created, updated, status, paid_at),
        reference=text(require(invoice, "external_id"), "external_id"),
        amount=total,
        fee=fee,
        received_amount=received,
        currency=(optional_text(invoice, "currency") or "IDR").upper(),
        status=LIFECYCLE[status],
        channel=optional_text(invoice, "payment_channel")
        or optional_text(invoice, "payment_method"),
        paid_at=paid_at,
        occurred_at=occurred_at,
        business_date=occurred_at.astimezone(tz).date(),
    )


def version(
    created: datetime, updated: datetime, status: str, paid_at: datetime | None = None
) -> datetime:
    """The version the store orders an invoice's states by: when it entered `status` (see the
    module's docstring), plus the status's lifecycle rank in microseconds. For a paid invoice
    `paid_at` counts too: `updated` can precede the payment."""
    entered = max(created, updated, paid_at or created) if status in _PAID else created
    return entered + timedelta(microseconds=_RANK[status])


def fee_and_received(invoice: Any, paid: Decimal) -> tuple[Decimal, Decimal | None]:
    """Xendit's fee and what the merchant receives, from whichever fields the callback has.

    `adjusted_received_amount` is the money that reaches the merchant, so paid minus it is the
    fee the merchant bore, whatever `fees_paid_amount` says (a docs example: paid 50000,
    `fees_paid_amount` 0, received 47500). Without it: the newer `fees[{type, value}]`, then
    `fees_paid_amount`, then nothing known (fee 0, received unknown).
    """
    if invoice.get("adjusted_received_amount") is not None:
        received = amount(invoice, "adjusted_received_amount")
        return max(Decimal(0), paid - received), received
    fees = each(invoice, "fees")
    if fees:
        fee = sum((amount(item, "value", at=at) for item, at in fees), Decimal(0))
        return fee, paid - fee
    if invoice.get("fees_paid_amount") is not None:
        fee = amount(invoice, "fees_paid_amount")
        return fee, paid - fee
    return Decimal(0), None
