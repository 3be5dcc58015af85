"""Olsera closed orders and their details → sales: money as strings, the till's order_time in
the outlet's zone, lines from the detail, unpaid orders skipped."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sambung.plugin import InvalidRecord, PaymentMethod
from sambung.testing import outlet
from sambung_olsera.mapping import to_records

Load = Callable[[str], Any]
MAKASSAR = outlet("panakkukang", "Asia/Makassar")


def rows(payload: Load) -> list[Any]:
    return list(payload("closeorder_page.json")["data"])


def items(payload: Load) -> list[Any]:
    return list(payload("closeorder_detail.json")["data"]["orderitems"])


def test_paid_order_amounts_and_lines_from_the_detail(payload: Load) -> None:
    [tx] = to_records(rows(payload)[0], items(payload), MAKASSAR)

    assert (tx.source_system, tx.external_id) == ("olsera", "880123")
    assert tx.total == Decimal(1799000) and tx.subtotal == Decimal(1650000)
    assert (tx.tax, tx.discount, tx.rounding) == (181500, 32500, 0)
    assert tx.subtotal - tx.discount + tx.service_charge + tx.tax + tx.rounding == tx.total
    [line] = tx.items
    assert (line.sku, line.name, line.quantity, line.unit_price, line.total) == (
        "BNS-1KG",
        "Biji Kopi Gayo 1 kg",
        6,
        275000,
        1650000,
    )
    assert tx.payment_method is PaymentMethod.CARD


def test_time_is_order_date_day_at_order_time_in_the_outlet_zone(payload: Load) -> None:
    [tx] = to_records(rows(payload)[0], items(payload), MAKASSAR)
    # 23:20 WITA on the 26th; created_time / modified_time (server times) are not read.
    assert tx.occurred_at == datetime(2026, 11, 26, 15, 20, tzinfo=UTC)
    assert tx.business_date == date(2026, 11, 26)
    assert tx.source_updated_at == tx.occurred_at


def test_server_times_do_not_move_the_sale(payload: Load) -> None:
    row = {**rows(payload)[0], "created_time": "2020-01-01 00:00:00", "modified_time": None}
    [tx] = to_records(row, items(payload), MAKASSAR)
    assert tx.occurred_at == datetime(2026, 11, 26, 15, 20, tzinfo=UTC)


def test_order_time_as_a_full_local_datetime(payload: Load) -> None:
    row = {**rows(payload)[0], "order_time": "2026-11-26 23:20:00"}
    [tx] = to_records(row, items(payload), MAKASSAR)
    assert tx.occurred_at == datetime(2026, 11, 26, 15, 20, tzinfo=UTC)


def test_unpaid_or_not_completed_orders_are_not_sales(payload: Load) -> None:
    assert to_records(rows(payload)[1], [], MAKASSAR) == []
    assert to_records({**rows(payload)[0], "status": "X"}, items(payload), MAKASSAR) == []


def test_a_paid_order_without_lines_is_refused(payload: Load) -> None:
    with pytest.raises(InvalidRecord) as err:
        to_records(rows(payload)[0], [], MAKASSAR)
    assert err.value.field == "orderitems"


def test_addon_price_counts_in_the_unit_price(payload: Load) -> None:
    line = {**items(payload)[0], "qty": "1", "addon_price": "5000.00", "amount": "280000.00"}
    row = {
        **rows(payload)[0],
        "total_amount": "280000.00",
        "tax_amount": "0",
        "discount_amount": "0",
    }
    [tx] = to_records(row, [line], MAKASSAR)
    assert tx.items[0].unit_price == 280000 and tx.total == 280000 and tx.rounding == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"total_amount": "1e5"}, "total_amount"),
        ({"order_time": None}, "order_time"),
        ({"order_date": "26/11/2026"}, "order_date"),
    ],
)
def test_bad_fields_are_named(payload: Load, change: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRecord) as err:
        to_records({**rows(payload)[0], **change}, items(payload), MAKASSAR)
    assert err.value.field == field


def test_a_bad_line_is_named(payload: Load) -> None:
    with pytest.raises(InvalidRecord) as err:
        to_records(rows(payload)[0], [{**items(payload)[0], "price": "abc"}], MAKASSAR)
    assert err.value.field == "orderitems.0.price"
