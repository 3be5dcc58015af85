"""The unified model every connector maps to: transactions, inventory levels and payments."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from functools import cache, lru_cache
from typing import Annotated, Any, ClassVar, Literal, NamedTuple, get_args, get_origin
from zoneinfo import ZoneInfo

import orjson
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    computed_field,
    field_validator,
    model_validator,
)

from .parse import MAX_AMOUNT_DIGITS


def canonical_decimal(value: Decimal) -> Decimal:
    """The same amount in one spelling: no trailing zeros, no exponent (`27500.00` → `27500`).

    Records are serialised once, straight to JSON, and fingerprinted on that JSON; one spelling
    per amount is what lets `27500` and `27500.00` from two deliveries count as the same content.
    """
    spelled = str(value)  # C-fast; as_tuple() would build a tuple of every digit
    if "." not in spelled and "E" not in spelled:
        return value if value or spelled == "0" else _ZERO  # integral already ("-0" → "0")
    if not value:
        return _ZERO
    normal = value.normalize()
    # normalize() turns 27500.00 into 2.75E+4: bring a positive exponent back to an integer.
    exponent = normal.as_tuple().exponent
    return normal.quantize(_ONE) if isinstance(exponent, int) and exponent > 0 else normal


def bounded_canonical(value: Decimal) -> Decimal:
    """`canonical_decimal`, refusing an amount with more integral digits than any till needs.

    The parsers bound what a vendor sends; this bounds what a mapping computes from it (a
    quantity of 3.6e15 times a price), so no record is ever stored with an amount past
    `MAX_AMOUNT_DIGITS` — nor one that Decimal's 28-digit context has already rounded.
    """
    # (Non-finite values never get here: pydantic refuses NaN and infinities itself.)
    canonical = canonical_decimal(value)
    if canonical.adjusted() >= MAX_AMOUNT_DIGITS:
        raise ValueError(f"amount must have at most {MAX_AMOUNT_DIGITS} integral digits")
    return canonical


_ZERO, _ONE = Decimal(0), Decimal(1)
# Every amount and quantity in the model: exact, canonical, bounded.
Amount = Annotated[Decimal, AfterValidator(bounded_canonical)]


def storable_id(value: str) -> str:
    """`value` if every store can keep it as a key column (see `ExternalId`)."""
    if "\x00" in value:
        raise ValueError("an id must not hold a NUL character")
    return value


# No NUL, checked in the model and not only by the store (PostgreSQL refuses it in a key): a
# row or webhook with such an id is that input's own error (row error, 422), never a failed
# batch write taking its neighbours down with it. (Lone surrogates pydantic refuses in any str.)
ExternalId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200, strip_whitespace=True),
    AfterValidator(storable_id),
]

Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


@dataclass(frozen=True)
class Outlet:
    """One shop branch, as configured."""

    id: str
    name: str
    timezone: ZoneInfo


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
        return _method_for(label) if label else cls.OTHER


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


@lru_cache(maxsize=1024)
def _method_for(label: str) -> PaymentMethod:
    # Cached: a merchant's tills use a handful of labels, seen on every transaction.
    words = label.lower().replace("-", " ").replace("_", " ")
    for method, needles in _PAYMENT_LABELS:
        if any(needle in words for needle in needles):
            return method
    return PaymentMethod.OTHER


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
    source_updated_at: AwareDatetime | None = Field(default=None, exclude=True)

    @field_validator("source_updated_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return value.astimezone(UTC) if value is not None else None

    @property
    def key(self) -> tuple[str, str, str, str]:
        """The identity a record is upserted on."""
        return (self.outlet, self.source_system, self.kind, self.external_id)

    @model_validator(mode="before")
    @classmethod
    def _accept_own_kind(cls, data: Any) -> Any:
        """Let a record's own JSON (which carries its kind) validate back into the record."""
        if isinstance(data, dict) and ("kind" in data or "record_kind" in data):
            data = dict(data)
            given = data.pop("kind", None) or data.pop("record_kind", None)
            data.pop("record_kind", None)
            if given != cls.kind:
                raise ValueError(f"kind {given!r} is not {cls.kind!r}")
        return data

    @computed_field(alias="kind")  # type: ignore[prop-decorator]
    @property
    def record_kind(self) -> str:
        """The kind, written into the JSON so a consumer knows what it holds."""
        return self.kind

    def fingerprint(self) -> str:
        """SHA-256 of the record's JSON: equal content, equal fingerprint."""
        return fingerprint_of(self.to_json())

    def serialized(self) -> SerializedRecord:
        """The record as the store writes it: identity, JSON, fingerprint, version and day."""
        data = _json_bytes(self)
        fingerprint = hashlib.sha256(data).hexdigest()  # = fingerprint_of(payload)
        day: date | None = getattr(self, "business_date", None)
        # tuple.__new__ builds it in C; the NamedTuple's own __new__ is a Python function, and
        # a CSV import serialises a million records.
        return tuple.__new__(
            SerializedRecord,
            (
                self.key,
                data.decode(),
                fingerprint,
                self.source_updated_at,
                day.isoformat() if day is not None else None,
            ),
        )

    def to_json(self) -> str:
        """The record's content as stored and delivered: JSON with its kind, exact amounts.

        Field order is the class's and amounts are canonical (see `canonical_decimal`), so this
        JSON is itself the canonical form the fingerprint hashes; `source_updated_at` is not
        content and travels beside it (the store keeps it in its own column).
        """
        return _json_bytes(self).decode()


def _json_bytes(model: BaseModel) -> bytes:
    """`model_dump_json(by_alias=True)`, byte for byte, written by orjson where it can be.

    pydantic's serialiser costs about as much as validating the record, which a CSV import pays
    a million times. orjson writes the same JSON for what records hold (strings, canonical
    Decimals given as their `str`, UTC datetimes with `Z`, dates, enums, None, nested models);
    a model it cannot write identically (a field serializer, an alias) or a value it refuses
    (a lone surrogate) goes through pydantic. `test_models.py` compares the two.
    """
    plan = _plan(type(model))
    if plan is not None:
        try:
            return orjson.dumps(_content(model, plan), default=_json_default, option=_ORJSON)
        except TypeError:  # orjson.JSONEncodeError is one: a value it cannot write as pydantic
            pass
    return model.__pydantic_serializer__.to_json(model, by_alias=True)


_ORJSON = orjson.OPT_UTC_Z


class _Plan(NamedTuple):
    excluded: tuple[str, ...]
    decimals: tuple[str, ...]  # fields that always hold a Decimal: written as str up front
    computed: tuple[tuple[str, str], ...]  # (JSON name, attribute)
    nested: tuple[tuple[str, _Plan], ...]  # fields holding a tuple of models, and their plan


def _content(model: BaseModel, plan: _Plan) -> dict[str, Any]:
    data = model.__dict__.copy()  # the fields in declaration order, as pydantic writes them
    for name in plan.excluded:
        del data[name]
    for name in plan.decimals:  # cheaper here than orjson calling back for each
        data[name] = str(data[name])
    for alias, name in plan.computed:
        data[alias] = getattr(model, name)
    for name, inner in plan.nested:
        if data[name]:
            data[name] = [_content(item, inner) for item in data[name]]
    return data


def _json_default(value: Any) -> str:
    if type(value) is Decimal:
        return str(value)  # what pydantic writes for a Decimal in JSON
    raise TypeError(f"not written by orjson: {type(value).__name__}")


@cache
def _plan(cls: type[BaseModel]) -> _Plan | None:
    """How orjson writes `cls` as pydantic would, or None when it cannot be sure to."""
    decorators = cls.__pydantic_decorators__
    if decorators.field_serializers or decorators.model_serializers:
        return None
    if cls.model_config.get("ser_json_timedelta") or cls.model_config.get("alias_generator"):
        return None
    excluded: list[str] = []
    decimals: list[str] = []
    nested: list[tuple[str, _Plan]] = []
    for name, info in cls.model_fields.items():
        if (
            info.alias
            or info.serialization_alias
            or any(type(meta).__name__.endswith("Serializer") for meta in info.metadata)
        ):
            return None
        if info.exclude:
            excluded.append(name)
            continue
        if info.annotation is Decimal:
            decimals.append(name)
        models = [
            a for a in get_args(info.annotation) if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        if models:
            if get_origin(info.annotation) is not tuple or len(models) != 1:
                return None
            inner = _plan(models[0])
            if inner is None:
                return None
            nested.append((name, inner))
        elif isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            return None  # a single nested model: not in the unified model; leave it to pydantic
    computed = tuple((info.alias or name, name) for name, info in cls.model_computed_fields.items())
    return _Plan(tuple(excluded), tuple(decimals), computed, tuple(nested))


def fingerprint_of(content_json: str) -> str:
    """The fingerprint of a record's `to_json()` text (so callers holding it hash it once)."""
    return hashlib.sha256(content_json.encode()).hexdigest()


class SerializedRecord(NamedTuple):
    """A record already serialised where it was mapped, ready for the store as it is.

    A CSV import maps and serialises rows in a worker process; the process that writes builds
    these from what it sends, and the store reads the same fields from them as from
    `Record.serialized()`.
    """

    key: tuple[str, str, str, str]
    payload: str  # `Record.to_json()`
    fingerprint: str  # `fingerprint_of(payload)`
    source_updated_at: datetime | None
    # The local day it counts for (transactions, summaries), ISO `2026-11-26`: daily summaries
    # find it by this, and both stores keep it as this text or parse it from it.
    business_date: str | None = None

    @property
    def kind(self) -> str:
        """The record's kind (part of its key)."""
        return self.key[2]

    def serialized(self) -> SerializedRecord:
        """Itself: it is serialised already."""
        return self


class LineItem(BaseModel):
    """One line of a transaction."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sku: str | None = None
    name: str
    quantity: Amount
    unit_price: Amount
    discount: Amount = Decimal(0)
    total: Amount


class Transaction(Record):
    """A sale, refund or void at an outlet's till."""

    kind: ClassVar[str] = "transaction"
    type: TransactionType = TransactionType.SALE
    occurred_at: AwareDatetime
    business_date: date
    currency: Currency = "IDR"
    subtotal: Amount
    discount: Amount = Decimal(0)
    service_charge: Amount = Decimal(0)
    tax: Amount = Decimal(0)
    rounding: Amount = Decimal(0)
    total: Amount
    payment_method: PaymentMethod = PaymentMethod.OTHER
    payment_method_label: str | None = None
    items: tuple[LineItem, ...] = ()
    # For a refund or void: the external id of the sale it reverses, when the vendor says.
    reverses_external_id: str | None = None

    @field_validator("occurred_at")
    @classmethod
    def _occurred_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @classmethod
    def rung_up(
        cls,
        *,
        occurred_at: datetime,
        tz: ZoneInfo,
        total: Decimal,
        subtotal: Decimal | None = None,
        discount: Decimal = Decimal(0),
        service_charge: Decimal = Decimal(0),
        tax: Decimal = Decimal(0),
        payment_label: str | None = None,
        **fields: Any,
    ) -> Transaction:
        """A transaction as a till rings it up, from the parts every POS sends.

        The business date is the local day in `tz`; the payment method is normalised from the
        vendor's label (kept too); and `rounding` is whatever the total holds beyond
        subtotal - discount + service charge + tax, since Indonesian tills round the amount due.
        A subtotal the vendor leaves out is the sum of the line totals, or with no lines
        total - tax - service charge + discount (then nothing is left for rounding).
        """
        if subtotal is None:
            items = fields.get("items") or ()
            if items:
                subtotal = sum((item.total for item in items), Decimal(0))
            else:
                subtotal = total - tax - service_charge + discount
        return cls(
            occurred_at=occurred_at,
            business_date=occurred_at.astimezone(tz).date(),
            subtotal=subtotal,
            discount=discount,
            service_charge=service_charge,
            tax=tax,
            rounding=total - (subtotal - discount + service_charge + tax),
            total=total,
            payment_method=PaymentMethod.from_label(payment_label),
            payment_method_label=payment_label,
            **fields,
        )


class InventoryLevel(Record):
    """Stock on hand of one product at an outlet (inventory.updated)."""

    kind: ClassVar[str] = "inventory_level"
    sku: str | None = None
    name: str | None = None
    quantity: Amount
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
    # What the payer paid; the gateway's fee; what reaches the merchant (amount - fee when the
    # gateway says nothing else). Kept side by side: gateways report them inconsistently.
    amount: Amount
    fee: Amount = Decimal(0)
    received_amount: Amount | None = None
    currency: Currency = "IDR"
    status: PaymentStatus
    channel: str | None = None
    paid_at: AwareDatetime | None = None
    occurred_at: AwareDatetime
    business_date: date


class SummaryLine(BaseModel):
    """One line of a daily summary: the net sales of one product at one unit price."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sku: str | None = None
    name: str
    unit_price: Amount
    # Net of refunds, so it can be negative when more was refunded than sold that day.
    quantity: Amount
    discount: Amount = Decimal(0)
    total: Amount


class DailySummary(Record):
    """The sales of one outlet on one business date, summed up (core makes it, not a vendor).

    Built by `sambung.delivery.summaries` from the stored transactions of that date: sales count in,
    refunds count against (negative quantities and amounts), voided sales count nowhere. Its
    external id is `{outlet}:{business_date}`, so a later transaction for the date makes a new
    revision of the same record, which an accounting sink posts over the same invoice.
    """

    kind: ClassVar[str] = "daily_summary"
    business_date: date
    currency: Currency = "IDR"
    transactions: int
    refunds: int = 0
    voids: int = 0
    subtotal: Amount
    discount: Amount = Decimal(0)
    service_charge: Amount = Decimal(0)
    tax: Amount = Decimal(0)
    rounding: Amount = Decimal(0)
    total: Amount
    lines: tuple[SummaryLine, ...] = ()
    # `source_system:external_id` of every transaction counted (sales, refunds and voids).
    source_ids: tuple[str, ...] = ()


class MethodTotal(BaseModel):
    """The net sales rung up on the POS with one payment method on one day."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: PaymentMethod
    count: int
    total: Amount


class PaymentTotal(BaseModel):
    """Gateway payments of one day grouped by one key (a status, or a channel): gross, fee, net."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    count: int
    gross: Amount
    fee: Amount = Decimal(0)
    net: Amount


class MethodComparison(BaseModel):
    """One payment method's POS net sales against the money the gateways collected for it
    (`pos` is 0 for a method not compared: none of its sales is expected through a gateway)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: PaymentMethod
    pos: Amount
    payments: Amount
    # payments - pos: negative when money is missing, positive when more arrived than was sold.
    difference: Amount


class MatchedPayment(BaseModel):
    """A sale and the payment linked to it, by reference or (failing one) by equal amount."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sale: str  # `source_system:external_id`
    payment: str
    by: Literal["reference", "amount"]
    method: PaymentMethod
    sale_amount: Amount
    payment_amount: Amount
    difference: Amount  # payment_amount - sale_amount (a partial payment: negative)


class UnmatchedSale(BaseModel):
    """A POS sale (or a refund of another day's sale) no payment accounts for."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sale: str
    type: TransactionType
    method: PaymentMethod
    amount: Amount  # signed: a refund counts against
    occurred_at: AwareDatetime


class UnmatchedPayment(BaseModel):
    """A collected gateway payment no sale accounts for."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    payment: str
    reference: str
    channel: str | None = None
    method: PaymentMethod
    amount: Amount
    paid_at: AwareDatetime | None = None


class Reconciliation(Record):
    """An outlet's POS sales of one business date against what its payment gateways collected.

    Built by `sambung.delivery.reconciliation` (core, not a vendor) from the stored transactions
    and payments of that date, under the external id `{outlet}:{business_date}`, so a late
    payment or a backfill makes a new revision of the same record.
    """

    kind: ClassVar[str] = "reconciliation"
    business_date: date
    currency: Currency = "IDR"
    status: Literal["matched", "differs"]
    sales: int = 0
    refunds: int = 0
    voids: int = 0
    pos_total: Amount  # every method, net of refunds and voids (as the daily summary counts)
    pos_by_method: tuple[MethodTotal, ...] = ()
    payments_by_status: tuple[PaymentTotal, ...] = ()
    # Collected payments (paid, settled) only: gross is what payers paid, net what arrives.
    payments_by_channel: tuple[PaymentTotal, ...] = ()
    gross: Amount = Decimal(0)
    fees: Amount = Decimal(0)
    net: Amount = Decimal(0)
    methods: tuple[MethodComparison, ...] = ()
    # Collected gross - POS net of the compared methods.
    difference: Amount = Decimal(0)
    matched: tuple[MatchedPayment, ...] = ()
    unmatched_sales: tuple[UnmatchedSale, ...] = ()
    unmatched_payments: tuple[UnmatchedPayment, ...] = ()


RECORD_KINDS: dict[str, type[Record]] = {
    cls.kind: cls for cls in (Transaction, InventoryLevel, Payment, DailySummary, Reconciliation)
}
RecordKind = Literal["transaction", "inventory_level", "payment", "daily_summary", "reconciliation"]
# Kinds core makes from other records rather than takes in from a vendor: a sink receives them
# only when it names them in `kinds:` (or its type asks for them).
DERIVED_KINDS = frozenset({DailySummary.kind, Reconciliation.kind})
