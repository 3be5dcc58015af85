"""Qasir rows → unified records, on a recorded page: exact amounts, zones, errors."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sambung.plugin import InvalidRecord, PaymentMethod, TransactionType
from sambung.testing import outlet
from sambung_qasir.mapping import to_transaction

Load = Callable[[str], Any]
JAKARTA = outlet("kemang", "Asia/Jakarta")
MAKASSAR = outlet("panakkukang", "Asia/Makassar")


def rows(payload: Load) -> list[Any]:
    return list(payload("transactions_page.json")["transactions"])


def test_sale_amounts_and_items(payload: Load) -> None:
    tx = to_transaction(rows(payload)[0], JAKARTA)

    assert (tx.outlet, tx.source_system, tx.external_id) == ("kemang", "qasir", "QSR-0012001")
    assert tx.type is TransactionType.SALE
    assert (tx.subtotal, tx.discount, tx.service_charge) == (78800, 5000, 3690)
    assert tx.tax == Decimal("7749.5")
    assert tx.rounding == Decimal("-39.5")
    assert tx.total == 85200
    assert [item.total for item in tx.items] == [50000, 28800]
    assert tx.payment_method is PaymentMethod.QRIS


@pytest.mark.parametrize(
    ("at", "instant", "day"),
    [
        (JAKARTA, datetime(2026, 11, 26, 17, 20, tzinfo=UTC), date(2026, 11, 27)),
        (MAKASSAR, datetime(2026, 11, 26, 16, 20, tzinfo=UTC), date(2026, 11, 27)),
    ],
)
def test_zone_less_times_are_read_in_the_outlet_timezone(
    payload: Load, at: Any, instant: datetime, day: date
) -> None:
    tx = to_transaction(rows(payload)[0], at)

    assert tx.occurred_at == instant
    assert tx.business_date == day
    assert tx.source_updated_at == instant.replace(second=5)


def test_void_without_items_derives_its_subtotal(payload: Load) -> None:
    tx = to_transaction(rows(payload)[1], JAKARTA)

    assert tx.type is TransactionType.VOID
    assert tx.total == 27500 and tx.subtotal == 25000
    assert tx.payment_method is PaymentMethod.CASH


@pytest.mark.parametrize("path", ["id", "total", "created_at", "items.1.name", "items.0.qty"])
def test_missing_field_is_named(payload: Load, path: str) -> None:
    row = rows(payload)[0]
    node = row
    *parents, leaf = path.split(".")
    for step in parents:
        node = node[int(step)] if isinstance(node, list) else node[step]
    del node[leaf]

    with pytest.raises(InvalidRecord) as caught:
        to_transaction(row, JAKARTA)

    assert caught.value.field == path


def test_bad_amount_is_named(payload: Load) -> None:
    row = rows(payload)[0]
    row["total"] = "dua ribu"

    with pytest.raises(InvalidRecord) as caught:
        to_transaction(row, JAKARTA)

    assert caught.value.field == "total"
