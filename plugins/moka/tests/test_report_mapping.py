"""Rows of Moka's `get_latest_transactions` report → sales and refunds (VENDORS.md, added)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from sambung.plugin import TransactionType
from sambung.testing import outlet
from sambung_moka.mapping import payment_to_records

Load = Callable[[str], Any]
JAKARTA = outlet("kemang", "Asia/Jakarta")


def rows(payload: Load) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = payload("latest_transactions.json")["data"]["payments"]
    return found


def test_instant_is_transaction_date_plus_transaction_time(payload: Load) -> None:
    [sale] = payment_to_records(rows(payload)[0], JAKARTA)
    assert sale.occurred_at == datetime(2026, 11, 26, 13, 15, 7, tzinfo=UTC)
    assert sale.business_date == date(2026, 11, 26)


def test_near_midnight_keeps_the_local_day(payload: Load) -> None:
    sale = payment_to_records(rows(payload)[1], JAKARTA)[0]
    assert sale.occurred_at == datetime(2026, 11, 26, 16, 59, 30, tzinfo=UTC)
    assert sale.business_date == date(2026, 11, 26)


def test_rounding_is_carried_and_the_sale_adds_up(payload: Load) -> None:
    [sale] = payment_to_records(rows(payload)[0], JAKARTA)
    assert (sale.subtotal, sale.discount, sale.service_charge, sale.tax) == (
        75000,
        5000,
        3500,
        8085,
    )
    assert sale.rounding == rows(payload)[0]["total_rounding_amount"] == 15
    assert sale.subtotal - sale.discount + sale.service_charge + sale.tax + sale.rounding == 81600
    assert len(sale.items) == 2


def test_a_partial_refund_is_a_refund_of_the_refunded_amount(payload: Load) -> None:
    sale, refund = payment_to_records(rows(payload)[1], JAKARTA)
    assert sale.type is TransactionType.SALE and sale.total == 55500
    assert refund.type is TransactionType.REFUND
    assert refund.external_id == "7712002:refund" and refund.reverses_external_id == "7712002"
    assert refund.total == 25000 and refund.items == ()
    assert refund.occurred_at == datetime(2026, 11, 27, 2, 10, tzinfo=UTC)


def test_a_refund_amount_without_the_flag_is_still_a_refund(payload: Load) -> None:
    row = {**rows(payload)[1], "is_refunded": False}
    assert [t.type for t in payment_to_records(row, JAKARTA)] == [
        TransactionType.SALE,
        TransactionType.REFUND,
    ]


def test_without_transaction_time_created_at_not_local_midnight(payload: Load) -> None:
    row = {k: v for k, v in rows(payload)[0].items() if k != "transaction_time"}
    [sale] = payment_to_records(row, JAKARTA)
    assert sale.occurred_at == datetime(2026, 11, 26, 13, 16, 2, tzinfo=UTC)
