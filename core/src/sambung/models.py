"""The unified model every connector maps to: transactions, inventory levels and payments."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, StringConstraints, field_validator

ExternalId = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


class PaymentMethod(StrEnum):
    """How a customer paid, normalised across vendors (the vendor's own label is kept too)."""

    CASH = "cash"
    CARD = "card"
    QRIS = "qris"
    EWALLET = "ewallet"
    BANK_TRANSFER = "bank_transfer"
    OTHER = "other"

    @classmethod
    def from_label(cls, label: str | None) -> PaymentMethod:
        """Normalise a vendor's label (`Tunai`, `GoPay`, `Debit BCA`, `QRIS`) to a method."""
        if not label:
            return cls.OTHER
        words = label.lower().replace("-", " ").replace("_", " ")
        for method, needles in _PAYMENT_LABELS:
            if any(needle in words for needle in needles):
                return method
        return cls.OTHER


# Checked in order: "qris" before the e-wallets, since "QRIS GoPay" is a QRIS payment.
_PAYMENT_LABELS: tuple[tuple[PaymentMethod, tuple[str, ...]], ...] = (
    (PaymentMethod.QRIS, ("qris", "qr code")),
    (PaymentMethod.CASH, ("cash", "tunai")),
    (
        PaymentMethod.EWALLET,
        (
            "gopay",
            "go pay",
            "ovo",
            "dana",
            "shopeepay",
            "shopee pay",
            "linkaja",
            "link aja",
            "e wallet",
            "ewallet",
            "sakuku",
            "jenius pay",
        ),
    ),
    (
        PaymentMethod.CARD,
        ("card", "kartu", "debit", "credit", "kredit", "edc", "visa", "mastercard", "jcb"),
    ),
    (
        PaymentMethod.BANK_TRANSFER,
        ("transfer", "virtual account", " va", "va ", "bank"),
    ),
)


class TransactionType(StrEnum):
    """Direction of a transaction; amounts are always positive and the type says which way."""

    SALE = "sale"
    REFUND = "refund"
    VOID = "void"


class Record(BaseModel):
    """Base of every unified record: identified by (outlet, source_system, kind, external_id)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ClassVar[str]
    outlet: str
    source_system: str
    external_id: ExternalId
    # The vendor's own version of this record (its modified time). It orders versions so a late
    # older one never overwrites a newer one; it is not content, so it is not fingerprinted.
    source_updated_at: AwareDatetime | None = None

    @field_validator("source_updated_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return value.astimezone(UTC) if value is not None else None

    @property
    def key(self) -> tuple[str, str, str, str]:
        """The identity a record is upserted on."""
        return (self.outlet, self.source_system, self.kind, self.external_id)

    def fingerprint(self) -> str:
        """SHA-256 of the record's canonical JSON: equal content, equal fingerprint."""
        content = self.model_dump(exclude={"source_updated_at"})
        content["kind"] = self.kind
        return hashlib.sha256(canonical_json(content).encode()).hexdigest()

    def to_json(self) -> str:
        """The record as stored and delivered: JSON with its kind and exact decimal strings."""
        content = self.model_dump(mode="json")
        content["kind"] = self.kind
        return json.dumps(content, ensure_ascii=False, separators=(",", ":"))


class LineItem(BaseModel):
    """One line of a transaction."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sku: str | None = None
    name: str
    quantity: Decimal
    unit_price: Decimal
    discount: Decimal = Decimal(0)
    total: Decimal


class Transaction(Record):
    """A sale, refund or void at an outlet's till."""

    kind: ClassVar[str] = "transaction"
    type: TransactionType = TransactionType.SALE
    occurred_at: AwareDatetime
    business_date: date
    currency: Currency = "IDR"
    subtotal: Decimal
    discount: Decimal = Decimal(0)
    service_charge: Decimal = Decimal(0)
    tax: Decimal = Decimal(0)
    rounding: Decimal = Decimal(0)
    total: Decimal
    payment_method: PaymentMethod = PaymentMethod.OTHER
    payment_method_label: str | None = None
    items: tuple[LineItem, ...] = ()
    # For a refund or void: the external id of the sale it reverses, when the vendor says.
    reverses_external_id: str | None = None

    @field_validator("occurred_at")
    @classmethod
    def _occurred_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)


class InventoryLevel(Record):
    """Stock on hand of one product at an outlet (inventory.updated)."""

    kind: ClassVar[str] = "inventory_level"
    sku: str | None = None
    name: str | None = None
    quantity: Decimal
    unit: str | None = None
    occurred_at: AwareDatetime
    business_date: date

    @field_validator("occurred_at")
    @classmethod
    def _occurred_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)


class PaymentStatus(StrEnum):
    """Lifecycle of a gateway payment; the order of members is the order it may move in."""

    PENDING = "pending"
    PAID = "paid"
    SETTLED = "settled"
    EXPIRED = "expired"
    FAILED = "failed"
    REFUNDED = "refunded"


class Payment(Record):
    """A payment seen by a gateway (Xendit invoice, later Midtrans)."""

    kind: ClassVar[str] = "payment"
    reference: str
    amount: Decimal
    fee: Decimal = Decimal(0)
    currency: Currency = "IDR"
    status: PaymentStatus
    channel: str | None = None
    paid_at: AwareDatetime | None = None
    occurred_at: AwareDatetime
    business_date: date


RECORD_KINDS: dict[str, type[Record]] = {
    cls.kind: cls for cls in (Transaction, InventoryLevel, Payment)
}
RecordKind = Literal["transaction", "inventory_level", "payment"]


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and one spelling per value (`1.50` and `1.5` agree) for hashing."""
    return json.dumps(_canonical(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _canonical(value: Any) -> Any:
    if isinstance(value, Decimal):
        # Normalise so equal amounts hash equal whatever the vendor's trailing zeros.
        return format(value.normalize(), "f") if value else "0"
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value
