"""Pawoon payloads → unified records, on recorded fixtures: exact amounts, zones, errors."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sambung.plugin import (
    InvalidRecord,
    InventoryLevel,
    LineItem,
    PaymentMethod,
    Transaction,
    TransactionType,
)
from sambung.testing import outlet
from sambung_pawoon.mapping import to_event, to_transaction

Load = Callable[[str], Any]

JAKARTA = outlet("kemang", "Asia/Jakarta")
MAKASSAR = outlet("panakkukang", "Asia/Makassar")


def transaction(payload: Any, at: Any = JAKARTA) -> Transaction:
    event = to_event(payload, at)
    assert event.event_type == "transaction.created"
    assert event.dedup_key is None  # Pawoon has no event id: core falls back to the body hash
    [record] = event.records
    assert isinstance(record, Transaction)
    return record


def test_transaction_amounts_and_items(payload: Load) -> None:
    tx = transaction(payload("transaction_created.json"))

    assert (tx.outlet, tx.source_system, tx.external_id) == (
        "kemang",
        "pawoon",
        "TRX-KMG-20240316-000123",
    )
    assert tx.type is TransactionType.SALE
    assert tx.currency == "IDR"
    assert tx.items == (
        LineItem(
            sku="BVG-EKSGA-L",
            name="Es Kopi Susu Gula Aren",
            quantity=Decimal(2),
            unit_price=Decimal(25000),
            total=Decimal(50000),
        ),
        LineItem(
            sku="PST-CRS-ALM",
            name="Croissant Almond",
            quantity=Decimal(1),
            unit_price=Decimal(32000),
            discount=Decimal(3200),
            total=Decimal(28800),
        ),
    )
    assert tx.subtotal == Decimal(78800)
    assert tx.discount == Decimal(5000)
    assert tx.service_charge == Decimal(3690)
    assert tx.tax == Decimal(7749)
    assert tx.total == Decimal(85200)
    # 78800 - 5000 + 3690 + 7749 = 85239, and the till rounded down to 85200.
    assert tx.rounding == Decimal(-39)
    assert tx.payment_method is PaymentMethod.QRIS
    assert tx.payment_method_label == "QRIS"
    assert tx.source_updated_at is None


def test_fractional_amounts_stay_exact(payload: Load) -> None:
    tx = transaction(payload("transaction_fractional_tax.json"))

    assert tx.tax == Decimal("755.0125")
    assert isinstance(tx.tax, Decimal)
    assert tx.items[0].quantity == Decimal("0.25")
    assert tx.subtotal == Decimal("7550.125")
    assert tx.rounding == Decimal("-5.1375")
    assert tx.payment_method is PaymentMethod.EWALLET
    assert tx.payment_method_label == "GoPay"


def test_very_large_amount_without_items(payload: Load) -> None:
    tx = transaction(payload("transaction_large_amount.json"))

    assert tx.total == Decimal("9999999999999.99")
    assert tx.subtotal == Decimal("9090909090909.09")
    assert tx.rounding == Decimal(0)
    assert tx.items == ()
    assert tx.payment_method is PaymentMethod.CARD
    assert tx.payment_method_label == "Debit BCA"
    assert '"total":"9999999999999.99"' in tx.to_json()


def test_no_items_derives_subtotal_from_total(payload: Load) -> None:
    body = payload("transaction_created.json")
    del body["data"]["items"]

    tx = transaction(body)

    assert tx.subtotal == Decimal(85200 - 7749 - 3690 + 5000)
    assert tx.rounding == Decimal(0)


@pytest.mark.parametrize(
    ("at", "instant"),
    [
        (JAKARTA, datetime(2024, 3, 15, 17, 20, tzinfo=UTC)),
        (MAKASSAR, datetime(2024, 3, 15, 16, 20, tzinfo=UTC)),
    ],
)
def test_naive_timestamp_is_read_in_the_outlet_timezone(
    payload: Load, at: Any, instant: datetime
) -> None:
    tx = transaction(payload("transaction_created.json"), at)

    assert tx.occurred_at == instant
    # Twenty past midnight local time is still the previous day in UTC: the business day is local.
    assert tx.business_date == date(2024, 3, 16)


@pytest.mark.parametrize("at", [JAKARTA, MAKASSAR])
def test_offset_timestamp_is_kept(payload: Load, at: Any) -> None:
    tx = transaction(payload("transaction_fractional_tax.json"), at)

    assert tx.occurred_at == datetime(2024, 3, 15, 15, 30, tzinfo=UTC)
    assert tx.business_date == date(2024, 3, 15)


def test_utc_timestamp_crosses_midnight_locally(payload: Load) -> None:
    body = payload("transaction_created.json")
    body["data"]["timestamp"] = "2024-03-15T16:30:00Z"

    tx = transaction(body, MAKASSAR)

    assert tx.occurred_at == datetime(2024, 3, 15, 16, 30, tzinfo=UTC)
    assert tx.business_date == date(2024, 3, 16)


def test_updated_at_becomes_the_source_version(payload: Load) -> None:
    body = payload("transaction_created.json")
    body["data"]["updated_at"] = "2024-03-16T00:25:00"

    tx = transaction(body)

    assert tx.source_updated_at == datetime(2024, 3, 15, 17, 25, tzinfo=UTC)


def test_inventory_level(payload: Load) -> None:
    event = to_event(payload("inventory_updated.json"), JAKARTA)

    assert event.event_type == "inventory.updated"
    [level] = event.records
    assert isinstance(level, InventoryLevel)
    assert (level.outlet, level.source_system, level.external_id) == (
        "kemang",
        "pawoon",
        "PRD-77120",
    )
    assert level.sku == "RAW-SUSU-UHT-1L"
    assert level.name == "Susu UHT Full Cream 1L"
    assert level.quantity == Decimal("12.5")
    assert level.unit == "liter"
    assert level.occurred_at == datetime(2024, 3, 15, 23, 45, 12, tzinfo=UTC)
    assert level.source_updated_at == level.occurred_at
    assert level.business_date == date(2024, 3, 16)


def test_oversold_stock_may_be_negative(payload: Load) -> None:
    body = payload("inventory_updated.json")
    body["data"]["stock"] = -3

    [level] = to_event(body, JAKARTA).records

    assert isinstance(level, InventoryLevel)
    assert level.quantity == Decimal(-3)


@pytest.mark.parametrize(
    ("fixture", "path"),
    [
        ("transaction_created.json", "data.transaction_id"),
        ("transaction_created.json", "data.total"),
        ("transaction_created.json", "data.tax"),
        ("transaction_created.json", "data.timestamp"),
        ("transaction_created.json", "data.items.1.price"),
        ("transaction_created.json", "data.items.0.name"),
        ("inventory_updated.json", "data.product_id"),
        ("inventory_updated.json", "data.stock"),
        ("inventory_updated.json", "data.updated_at"),
    ],
)
def test_missing_field_is_named(payload: Load, fixture: str, path: str) -> None:
    body = payload(fixture)
    *parents, leaf = path.split(".")
    node = body
    for step in parents:
        node = node[int(step)] if isinstance(node, list) else node[step]
    del node[leaf]

    with pytest.raises(InvalidRecord) as caught:
        to_event(body, JAKARTA)

    assert caught.value.field == path
    assert caught.value.reason == "field required"


@pytest.mark.parametrize("bad", ["abc", True, None, [], "NaN", "Infinity", -85200])
def test_bad_amount_is_named(payload: Load, bad: Any) -> None:
    body = payload("transaction_created.json")
    body["data"]["total"] = bad

    with pytest.raises(InvalidRecord) as caught:
        to_transaction(body, JAKARTA)

    assert caught.value.field == "data.total"


@pytest.mark.parametrize(("field", "bad"), [("qty", "dua"), ("discount", False), ("price", -1)])
def test_bad_item_amount_is_named(payload: Load, field: str, bad: Any) -> None:
    body = payload("transaction_created.json")
    body["data"]["items"][1][field] = bad

    with pytest.raises(InvalidRecord) as caught:
        to_transaction(body, JAKARTA)

    assert caught.value.field == f"data.items.1.{field}"


def test_items_must_be_a_list(payload: Load) -> None:
    body = payload("transaction_created.json")
    body["data"]["items"] = {"name": "Es Kopi Susu Gula Aren"}

    with pytest.raises(InvalidRecord) as caught:
        to_transaction(body, JAKARTA)

    assert caught.value.field == "data.items"


@pytest.mark.parametrize("bad", ["kemarin sore", "2024-13-45T00:00:00", True])
def test_bad_timestamp_is_named(payload: Load, bad: Any) -> None:
    body = payload("transaction_created.json")
    body["data"]["timestamp"] = bad

    with pytest.raises(InvalidRecord) as caught:
        to_transaction(body, JAKARTA)

    assert caught.value.field == "data.timestamp"


@pytest.mark.parametrize("event_type", ["transaction.deleted", "TRANSACTION.CREATED", 42])
def test_unknown_event_type(payload: Load, event_type: Any) -> None:
    body = payload("transaction_created.json")
    body["event_type"] = event_type

    with pytest.raises(InvalidRecord) as caught:
        to_event(body, JAKARTA)

    assert caught.value.field == "event_type"
    assert caught.value.reason == f"unknown event type '{event_type}'"


def test_missing_event_type(payload: Load) -> None:
    body = payload("transaction_created.json")
    del body["event_type"]

    with pytest.raises(InvalidRecord) as caught:
        to_event(body, JAKARTA)

    assert caught.value.field == "event_type"


def test_blank_optional_text_is_absent(payload: Load) -> None:
    body = payload("transaction_created.json")
    body["data"]["items"][0]["sku"] = ""
    body["data"]["payment_method"] = None

    tx = transaction(body)

    assert tx.items[0].sku is None
    assert tx.payment_method is PaymentMethod.OTHER
    assert tx.payment_method_label is None


def test_equal_payloads_have_equal_fingerprints(payload: Load) -> None:
    first = transaction(payload("transaction_created.json"))
    again = transaction(payload("transaction_created.json"))
    trailing_zeros = payload("transaction_created.json")
    trailing_zeros["data"]["total"] = Decimal("85200.00")

    assert first.fingerprint() == again.fingerprint()
    assert first.fingerprint() == transaction(trailing_zeros).fingerprint()


def test_changed_amount_changes_the_fingerprint(payload: Load) -> None:
    first = transaction(payload("transaction_created.json"))
    changed = payload("transaction_created.json")
    changed["data"]["tax"] = 7750

    assert first.fingerprint() != transaction(changed).fingerprint()
