"""Olsera closed orders → unified records: money as strings, zone-less UTC times, unpaid."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sambung.errors import InvalidRecord
from sambung.models import PaymentMethod
from sambung.testing import outlet
from sambung_olsera.mapping import to_records

Load = Callable[[str], Any]
MAKASSAR = outlet("panakkukang", "Asia/Makassar")


def rows(payload: Load) -> list[Any]:
    return list(payload("closeorder_page.json")["data"])


def test_paid_order_amounts(payload: Load) -> None:
    [tx] = to_records(rows(payload)[0], MAKASSAR)

    assert (tx.source_system, tx.external_id) == ("olsera", "880123")
    assert tx.total == Decimal(1799000) and tx.subtotal == Decimal(1650000)
    assert (tx.tax, tx.discount, tx.rounding) == (181500, 32500, 0)
    assert tx.items[0].quantity == 6
    assert tx.payment_method is PaymentMethod.CARD


def test_zone_less_utc_times_and_a_makassar_business_date(payload: Load) -> None:
    [tx] = to_records(rows(payload)[0], MAKASSAR)

    assert tx.occurred_at == datetime(2026, 11, 26, 16, 20, tzinfo=UTC)
    # 16:20 UTC is 00:20 WITA the next day: that is the business day.
    assert tx.business_date == date(2026, 11, 27)


def test_times_may_be_read_in_the_outlet_zone(payload: Load) -> None:
    [tx] = to_records(rows(payload)[0], MAKASSAR, naive_times="outlet")

    assert tx.occurred_at == datetime(2026, 11, 26, 8, 20, tzinfo=UTC)


def test_unpaid_orders_map_to_nothing(payload: Load) -> None:
    assert to_records(rows(payload)[1], MAKASSAR) == []


@pytest.mark.parametrize("field", ["id", "total_amount", "order_amount", "created_time"])
def test_missing_field_is_named(payload: Load, field: str) -> None:
    row = rows(payload)[0]
    del row[field]

    with pytest.raises(InvalidRecord) as caught:
        to_records(row, MAKASSAR)

    assert caught.value.field == field
