"""The unified model: fingerprints, UTC normalisation, payment labels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from pydantic import ValidationError
from sambung.models import PaymentMethod, Transaction

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
