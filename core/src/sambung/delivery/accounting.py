"""What every accounting sink (accurate, jurnal) shares: the `post:` choice, the code mapping of
the YAML, and the invoice a transaction or a daily summary becomes, with exact amounts.

A plugin turns an `InvoiceDraft` into its vendor's fields; the draft already holds the
deterministic invoice number (so a re-post updates rather than duplicates), the item and customer
codes from the YAML, and lines whose amounts add up to the till's total to the rupiah.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import Field, ValidationError

from sambung.errors import DeliveryRejected
from sambung.models import DailySummary, Transaction, TransactionType

from .sinks import Delivery, SinkSettings

Post = Literal["per_transaction", "daily_summary"]
_ZERO = Decimal(0)


class ChargeItems(SinkSettings):
    """Item codes for the amounts of a sale that are not products; unset → that amount
    (when not zero) makes the invoice a dead letter naming the missing setting."""

    service_charge: str | None = None
    tax: str | None = None
    rounding: str | None = None
    # A transaction-level discount (line discounts stay on their lines).
    discount: str | None = None


class AccountingSinkSettings(SinkSettings):
    """YAML settings every accounting sink takes besides its credentials."""

    # One invoice per transaction, or one per outlet and business date (see `summaries:`).
    post: Post = "daily_summary"
    # Invoice numbers are `{prefix}{yyyymmdd}-{8 hex}`, derived from the record's identity.
    invoice_prefix: str = Field("SMB-", max_length=8)
    # POS sku → the accounting system's item code; unmapped skus use `default_item`.
    items: dict[str, str] = Field(default_factory=dict)
    default_item: str | None = None
    # Outlet id → the accounting system's customer (a walk-in customer per outlet).
    customers: dict[str, str] = Field(default_factory=dict)
    default_customer: str | None = None
    charge_items: ChargeItems = ChargeItems()

    def record_kinds(self) -> frozenset[str]:
        """Daily summaries or single transactions, as `post` says; never both."""
        kind = DailySummary.kind if self.post == "daily_summary" else Transaction.kind
        return frozenset({kind})

    def check_invoice(self, draft: InvoiceDraft) -> None:
        """Raise `DeliveryRejected` if `draft` cannot become an invoice with these settings (a
        code it needs is not mapped); no call to the vendor. A plugin overrides this with its
        own pure mapping, so a dry run (`sambung dlq replay --dry-run`) finds what it would."""
        self.customer_code(draft.outlet)
        for line in draft.lines:
            self.item_code(line.sku, line.name)
        for charge, _ in draft.charges():
            self.charge_code(charge)

    def item_code(self, sku: str | None, name: str) -> str:
        """The item code of a product line, or `DeliveryRejected` naming what to map."""
        code = self.items.get(sku) if sku else None
        return _mapped(code or self.default_item, f"product {sku or name!r}", "items", "item")

    def customer_code(self, outlet: str) -> str:
        """The customer invoices of `outlet` are made out to."""
        code = self.customers.get(outlet) or self.default_customer
        return _mapped(code, f"outlet {outlet!r}", "customers", "customer")

    def charge_code(self, charge: str) -> str:
        """The item code of a non-product amount (service charge, tax, rounding, discount)."""
        code = getattr(self.charge_items, charge)
        if code is None:
            raise DeliveryRejected(
                f"the invoice has a {charge.replace('_', ' ')} but `charge_items.{charge}` is "
                "not set in this sink's settings: set it, then replay the dead letter"
            )
        return str(code)


def _mapped(code: str | None, what: str, mapping: str, default: str) -> str:
    if code is None:
        raise DeliveryRejected(
            f"{what} has no {default} code: map it under `{mapping}:` or set `default_{default}:`"
            " in this sink's settings, then replay the dead letter"
        )
    return code


@dataclass(frozen=True)
class InvoiceLine:
    """One product line: quantity x unit price less discount is exactly the line's total."""

    sku: str | None
    name: str
    quantity: Decimal
    unit_price: Decimal
    discount: Decimal

    @property
    def total(self) -> Decimal:
        """What the line adds to the invoice."""
        return self.quantity * self.unit_price - self.discount


@dataclass(frozen=True)
class InvoiceDraft:
    """One invoice to post, whatever the vendor: lines, charges and the till's total."""

    number: str
    outlet: str
    business_date: date
    description: str
    currency: str
    lines: tuple[InvoiceLine, ...]
    discount: Decimal  # transaction-level, beyond the lines' own discounts
    service_charge: Decimal
    tax: Decimal
    rounding: Decimal
    total: Decimal

    def charges(self) -> list[tuple[str, Decimal]]:
        """The non-zero non-product amounts, as (name, signed amount) in a fixed order."""
        found = [
            ("service_charge", self.service_charge),
            ("tax", self.tax),
            ("rounding", self.rounding),
            ("discount", -self.discount),
        ]
        return [(name, amount) for name, amount in found if amount]


def invoice_number(prefix: str, business_date: date, *identity: str) -> str:
    """A short invoice number that is the same every time for the same record."""
    digest = hashlib.sha256("|".join(identity).encode()).hexdigest()[:8].upper()
    return f"{prefix}{business_date:%Y%m%d}-{digest}"


def draft_of(delivery: Delivery, prefix: str) -> InvoiceDraft:
    """The invoice a delivered transaction or daily summary becomes.

    Raises `DeliveryRejected` for what cannot be an invoice: a refund or void posted one by one
    (record those as a sales return in the accounting system), or a summary with nothing left.
    """
    identity = (delivery.outlet, delivery.source_system, delivery.kind)
    try:
        if delivery.kind == DailySummary.kind:
            summary = DailySummary.model_validate_json(delivery.payload)
            return _summary_draft(
                summary,
                invoice_number(prefix, summary.business_date, *identity, summary.external_id),
            )
        if delivery.kind == Transaction.kind:
            sale = Transaction.model_validate_json(delivery.payload)
            return _transaction_draft(
                sale, invoice_number(prefix, sale.business_date, *identity, sale.external_id)
            )
    except ValidationError as err:
        raise DeliveryRejected(f"the {delivery.kind} record does not read: {err}") from err
    raise DeliveryRejected(f"an accounting sink posts no {delivery.kind} records")


def _transaction_draft(sale: Transaction, number: str) -> InvoiceDraft:
    if sale.type is not TransactionType.SALE:
        raise DeliveryRejected(
            f"{sale.type.value} {sale.external_id} is not posted as an invoice: record it in the "
            "accounting system as a sales return, or use `post: daily_summary`, which nets it"
        )
    lines = [_line(i.sku, i.name, i.quantity, i.unit_price, i.total) for i in sale.items]
    return InvoiceDraft(
        number=number,
        outlet=sale.outlet,
        business_date=sale.business_date,
        description=f"{sale.source_system} sale {sale.external_id} at {sale.outlet}",
        currency=sale.currency,
        lines=_balanced(lines, sale.subtotal),
        discount=sale.discount,
        service_charge=sale.service_charge,
        tax=sale.tax,
        rounding=sale.rounding,
        total=sale.total,
    )


def _summary_draft(summary: DailySummary, number: str) -> InvoiceDraft:
    lines = [_line(i.sku, i.name, i.quantity, i.unit_price, i.total) for i in summary.lines]
    balanced = _balanced(lines, summary.subtotal)
    if not balanced and not summary.total:
        raise DeliveryRejected(
            f"the summary of {summary.outlet} on {summary.business_date} has nothing left to "
            "post (every sale was refunded or voided): remove its invoice by hand if one exists"
        )
    return InvoiceDraft(
        number=number,
        outlet=summary.outlet,
        business_date=summary.business_date,
        description=(
            f"Daily sales {summary.outlet} {summary.business_date}: {summary.transactions} sales,"
            f" {summary.refunds} refunds (sambung)"
        ),
        currency=summary.currency,
        lines=balanced,
        discount=summary.discount,
        service_charge=summary.service_charge,
        tax=summary.tax,
        rounding=summary.rounding,
        total=summary.total,
    )


def _line(
    sku: str | None, name: str, quantity: Decimal, unit_price: Decimal, total: Decimal
) -> InvoiceLine:
    # The vendor's line total is the authority: the discount is whatever makes q x p match it.
    return InvoiceLine(sku, name, quantity, unit_price, quantity * unit_price - total)


def _balanced(lines: list[InvoiceLine], subtotal: Decimal) -> tuple[InvoiceLine, ...]:
    """The lines, plus one for whatever the vendor's subtotal holds beyond them (a sale sent
    without items is one line of its subtotal), so the invoice adds up to the till."""
    missing = subtotal - sum((line.total for line in lines), _ZERO)
    if missing:
        lines = [*lines, InvoiceLine(None, "Sales", Decimal(1), missing, _ZERO)]
    return tuple(lines)
