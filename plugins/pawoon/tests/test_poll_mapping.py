"""Rows of Pawoon's `GET /transactions` → sales, on a page shaped as VENDORS.md says."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sambung.plugin import InvalidRecord, PaymentMethod, Transaction
from sambung.testing import outlet
from sambung_pawoon.mapping import to_polled_transaction

Load = Callable[[str], Any]
JAKARTA = outlet("kemang", "Asia/Jakarta")


def rows(payload: Load) -> list[dict[str, Any]]:
    page: list[dict[str, Any]] = payload("transactions_page.json")["data"]
    return page


def sale(row: dict[str, Any]) -> Transaction:
    return to_polled_transaction(row, JAKARTA)


def adds_up(t: Transaction) -> bool:
    return t.subtotal - t.discount + t.service_charge + t.tax + t.rounding == t.total


def test_total_tax_and_details_are_read(payload: Load) -> None:
    t = sale(rows(payload)[0])
    assert t.external_id == "INV/KMG/2611/0042"
    assert (t.subtotal, t.tax, t.total, t.rounding) == (50000, 5000, 55000, 0)
    assert [(i.sku, i.name, i.quantity, i.unit_price, i.total) for i in t.items] == [
        ("778", "Es Kopi Susu Gula Aren", 1, 25000, 25000),
        ("781", "Croissant Butter", 1, 25000, 25000),
    ]
    assert t.payment_method is PaymentMethod.QRIS


def test_service_discount_and_rounding(payload: Load) -> None:
    t = sale(rows(payload)[1])
    assert (t.subtotal, t.discount, t.service_charge, t.tax) == (85000, 7000, 3525, 7755)
    assert t.total == 89300 and t.rounding == 20 and adds_up(t)
    assert t.items[1].quantity == Decimal("1.5")


def test_final_amount_not_the_tendered_total_payment(payload: Load) -> None:
    # total_payment 100000 is what was tendered; the bill is final_amount.
    assert sale(rows(payload)[1]).total == 89300


def test_total_payment_when_final_amount_is_absent(payload: Load) -> None:
    row = {k: v for k, v in rows(payload)[0].items() if k != "final_amount"}
    assert sale(row).total == 55000


def test_split_bill_keeps_the_largest_payment(payload: Load) -> None:
    t = sale(rows(payload)[1])
    assert t.payment_method_label == "Tunai" and t.payment_method is PaymentMethod.CASH


def test_device_timestamp_is_local_till_time(payload: Load) -> None:
    t = sale(rows(payload)[1])
    assert t.occurred_at == datetime(2026, 11, 26, 16, 58, 40, tzinfo=UTC)
    assert t.business_date == date(2026, 11, 26)


def test_webhook_names_are_not_read(payload: Load) -> None:
    row = {**rows(payload)[0], "tax": 999, "items": [], "payment_method": "Tunai"}
    t = sale(row)
    assert t.tax == 5000 and len(t.items) == 2 and t.payment_method is PaymentMethod.QRIS


def test_unknown_fields_and_missing_optional_ones(payload: Load) -> None:
    row = {k: v for k, v in rows(payload)[0].items() if k not in ("payments", "total_service")}
    t = sale({**row, "new_field": {"x": 1}})
    assert t.service_charge == 0 and t.payment_method is PaymentMethod.OTHER and adds_up(t)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"final_amount": "abc"}, "final_amount"),
        ({"total_tax": -5}, "total_tax"),
        ({"device_timestamp": None}, "device_timestamp"),
    ],
)
def test_bad_fields_are_named(payload: Load, change: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRecord) as err:
        sale({**rows(payload)[0], **change})
    assert err.value.field == field


def test_a_bad_detail_is_named(payload: Load) -> None:
    row = rows(payload)[0]
    details = [{**row["details"][0], "qty": "x"}]
    with pytest.raises(InvalidRecord) as err:
        sale({**row, "details": details})
    assert err.value.field == "details.0.qty"
