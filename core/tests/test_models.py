"""The unified model: fingerprints, UTC normalisation, payment labels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sambung.models import (
    LineItem,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Transaction,
    TransactionType,
    _json_bytes,
    canonical_decimal,
    fingerprint_of,
)

from .conftest import sale


def test_fingerprint_ignores_trailing_zeros_and_version_but_not_amounts() -> None:
    base = sale(total="27500")
    assert base.fingerprint() == sale(total="27500.00").fingerprint()
    assert base.fingerprint() == sale(updated_at=datetime.now(UTC)).fingerprint()
    assert base.fingerprint() != sale(total="27501").fingerprint()


def test_times_are_stored_in_utc_and_naive_times_are_refused() -> None:
    wib = timezone(timedelta(hours=7))
    record = sale().model_copy(update={})
    local = Transaction.model_validate(
        {**record.model_dump(), "occurred_at": datetime(2026, 11, 26, 20, 15, tzinfo=wib)}
    )
    assert local.occurred_at.utcoffset() == timedelta(0)
    assert local.occurred_at.hour == 13
    with pytest.raises(ValidationError):
        Transaction.model_validate({**record.model_dump(), "occurred_at": datetime(2026, 1, 1)})


def test_json_keeps_exact_decimal_strings() -> None:
    record = sale(total="755.0125")
    assert '"total":"755.0125"' in record.to_json()
    assert '"kind":"transaction"' in record.to_json()


@pytest.mark.parametrize(
    ("label", "method"),
    [
        ("Tunai", "cash"),
        ("CASH", "cash"),
        ("QRIS", "qris"),
        ("QRIS GoPay", "qris"),
        ("GoPay", "ewallet"),
        ("OVO", "ewallet"),
        ("ShopeePay", "ewallet"),
        ("Debit BCA", "card"),
        ("Kartu Kredit", "card"),
        ("Transfer Bank", "bank_transfer"),
        ("BCA Virtual Account", "bank_transfer"),
        ("Voucher", "other"),
        (None, "other"),
    ],
)
def test_payment_labels_normalise(label: str | None, method: str) -> None:
    assert PaymentMethod.from_label(label) == PaymentMethod(method)


def test_amounts_are_decimals_never_floats() -> None:
    assert isinstance(sale().total, Decimal)


def test_a_record_validates_back_from_its_own_json() -> None:
    record = sale(total="755.0125")
    assert Transaction.model_validate_json(record.to_json()) == record
    with pytest.raises(ValidationError, match="kind 'payment' is not 'transaction'"):
        Transaction.model_validate({**record.model_dump(), "kind": "payment"})


def test_amounts_have_one_spelling() -> None:
    assert str(sale(total="27500.00").total) == "27500"
    assert str(sale(total="1E+3").total) == "1000"
    assert str(sale(total="755.0125").total) == "755.0125"


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("27500.00", "27500"),
        ("755.0125", "755.0125"),
        ("0.10", "0.1"),
        ("-0", "0"),
        ("-0.00", "0"),
        ("1E+3", "1000"),
        ("1.5E+3", "1500"),
        ("-12.50", "-12.5"),
        ("0E-8", "0"),
        ("1E-7", "1E-7"),
        ("123456789012345678.00", "123456789012345678"),
    ],
)
def test_canonical_decimal_keeps_the_value_and_drops_the_spelling(
    given: str, canonical: str
) -> None:
    result = canonical_decimal(Decimal(given))
    assert result == Decimal(given)
    assert str(result) == canonical


# -- the JSON writer: orjson where it writes what pydantic writes, byte for byte ---------------

TEXT = st.text(min_size=1, max_size=12)  # quotes, backslashes, controls, emoji, any script
# Ids: the same, less the NUL no store keeps in a key (refused by the model, tested below).
# Surrogates stay excluded as `st.text()` excludes them: an explicit alphabet lets them in.
IDS = st.text(
    st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), min_size=1, max_size=12
).filter(str.strip)
AMOUNT = st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**15), max_value=10**15)
ZONES = st.sampled_from(
    [
        UTC,
        timezone(timedelta(hours=7)),
        timezone(timedelta(hours=-3, minutes=-30)),
        timezone(timedelta(0)),
    ]
)
MOMENT = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1), timezones=ZONES
)


@st.composite
def transactions(draw: st.DrawFn) -> Transaction:
    items = draw(
        st.lists(
            st.builds(
                LineItem,
                sku=st.none() | TEXT,
                name=TEXT,
                quantity=AMOUNT,
                unit_price=AMOUNT,
                discount=AMOUNT,
                total=AMOUNT,
            ),
            max_size=3,
        )
    )
    return Transaction(
        outlet=draw(TEXT),
        source_system=draw(TEXT),
        external_id=draw(IDS),
        source_updated_at=draw(st.none() | MOMENT),
        type=draw(st.sampled_from(TransactionType)),
        occurred_at=draw(MOMENT),
        business_date=draw(st.dates()),
        subtotal=draw(AMOUNT),
        discount=draw(AMOUNT),
        tax=draw(AMOUNT),
        total=draw(AMOUNT),
        payment_method=draw(st.sampled_from(PaymentMethod)),
        payment_method_label=draw(st.none() | TEXT),
        items=tuple(items),
        reverses_external_id=draw(st.none() | TEXT),
    )


@settings(max_examples=200)
@given(transactions())
def test_record_json_is_what_pydantic_writes_byte_for_byte(record: Transaction) -> None:
    expected = record.__pydantic_serializer__.to_json(record, by_alias=True)
    assert _json_bytes(record) == expected
    assert record.to_json() == expected.decode()
    serialized = record.serialized()
    assert serialized == (
        record.key,
        expected.decode(),
        record.fingerprint(),
        record.source_updated_at,
        record.business_date.isoformat(),
    )
    assert serialized.fingerprint == fingerprint_of(expected.decode())


@settings(max_examples=100)
@given(
    st.builds(
        Payment,
        outlet=TEXT,
        source_system=TEXT,
        external_id=IDS,
        reference=TEXT,
        amount=AMOUNT,
        fee=AMOUNT,
        status=st.sampled_from(PaymentStatus),
        channel=st.none() | TEXT,
        paid_at=st.none() | MOMENT,  # not turned to UTC by the model: offsets are written
        occurred_at=MOMENT,
        business_date=st.dates(),
    )
)
def test_payment_json_with_its_own_offsets_is_what_pydantic_writes(record: Payment) -> None:
    assert _json_bytes(record) == record.__pydantic_serializer__.to_json(record, by_alias=True)


@pytest.mark.parametrize("amount", ["1e20", "-123456789012345678901", "3636363636363640" + "27500"])
def test_an_amount_past_what_any_till_needs_is_refused_even_when_computed(amount: str) -> None:
    # Parsers bound what vendors send; a mapping multiplying two bounded numbers is held here.
    with pytest.raises(ValidationError, match="at most 20 integral digits"):
        sale(total=amount)
    assert sale(total="9" * 20).total == Decimal("9" * 20)


@pytest.mark.parametrize("external_id", ["TRX\x00-1", "TRX-\ud800"])
def test_an_id_no_store_can_keep_is_the_records_own_error(external_id: str) -> None:
    # Refused when mapped, so a CSV row or a webhook fails alone, not the batch it was in.
    with pytest.raises(ValidationError, match="external_id"):
        sale(external_id)
