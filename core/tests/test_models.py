"""The unified model: fingerprints, UTC normalisation, payment labels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from pydantic import ValidationError
from sambung.models import PaymentMethod, Transaction, canonical_decimal

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
