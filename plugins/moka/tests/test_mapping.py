"""Moka payloads → unified records, on recorded fixtures: exact amounts, zones, events, errors."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sambung.plugin import InvalidRecord, LineItem, PaymentMethod, Transaction, TransactionType
from sambung.testing import outlet
from sambung_moka.mapping import ITEM_EVENTS, to_event, to_transaction

Load = Callable[[str], Any]

JAKARTA = outlet("kemang", "Asia/Jakarta")
MAKASSAR = outlet("panakkukang", "Asia/Makassar")


def transaction(payload: Any, at: Any = JAKARTA) -> Transaction:
    [record] = to_event(payload, at).records
    assert isinstance(record, Transaction)
    return record


def test_created_sale(payload: Load) -> None:
    event = to_event(payload("transaction_created.json"), JAKARTA)

    assert event.event_type == "moka.transaction.created"
    assert event.dedup_key == "5f0c1e7a-3b9d-4c21-9a58-2d7e6b14c0a1"
    [tx] = event.records
    assert isinstance(tx, Transaction)
    assert (tx.outlet, tx.source_system, tx.external_id) == ("kemang", "moka", "987654321")
    assert tx.type is TransactionType.SALE
    assert tx.reverses_external_id is None
    assert tx.subtotal == Decimal(94200)
    assert tx.discount == Decimal(4710)
    assert tx.service_charge == Decimal("4474.5")
    assert tx.tax == Decimal("9396.45")
    assert tx.total == Decimal(103400)
    # 94200 - 4710 + 4474.5 + 9396.45 = 103360.95, collected as 103400.
    assert tx.rounding == Decimal("39.05")
    assert tx.payment_method is PaymentMethod.CASH
    assert tx.payment_method_label == "Tunai"
    # No updated_at in the body: the event's own time orders the versions.
    assert tx.source_updated_at == datetime(2024, 3, 15, 17, 21, 4, tzinfo=UTC)


def test_line_items(payload: Load) -> None:
    tx = transaction(payload("transaction_created.json"))

    assert tx.items == (
        LineItem(
            sku="88123",
            name="Es Kopi Susu - Gula Aren",
            quantity=Decimal(2),
            unit_price=Decimal(22000),
            total=Decimal(44000),
        ),
        # The variant repeats the name, so it is not appended; the shortfall is the discount.
        LineItem(
            sku="88200",
            name="Roti Bakar Coklat Keju",
            quantity=Decimal(1),
            unit_price=Decimal(18000),
            discount=Decimal(1800),
            total=Decimal(16200),
        ),
        # A modifier (oat milk) lifts the total above price * quantity: that is no discount.
        LineItem(
            sku="88170",
            name="Matcha Latte - Hot",
            quantity=Decimal(1),
            unit_price=Decimal(28000),
            total=Decimal(34000),
        ),
    )


def test_item_discount_field_when_no_shortfall(payload: Load) -> None:
    body = payload("transaction_created.json")
    body["body"]["transaction"]["items"][2]["discount_amount"] = 2000

    tx = transaction(body)

    assert tx.items[2].discount == Decimal(2000)


def test_updated_sale_with_fractional_tax(payload: Load) -> None:
    event = to_event(payload("transaction_updated.json"), MAKASSAR)

    assert event.event_type == "moka.transaction.updated"
    [tx] = event.records
    assert isinstance(tx, Transaction)
    assert tx.external_id == "987654400"
    assert tx.tax == Decimal("755.0125")
    assert tx.total == Decimal("7755.0125")
    assert isinstance(tx.tax, Decimal)
    assert tx.rounding == Decimal(0)
    assert tx.payment_method is PaymentMethod.QRIS
    assert tx.items == (
        LineItem(
            sku="SNK-KRP-UDG",
            name="Kerupuk Udang",
            quantity=Decimal(2),
            unit_price=Decimal(3500),
            total=Decimal(7000),
        ),
    )
    # The offset in the body wins over the outlet's zone, and updated_at is the version.
    assert tx.occurred_at == datetime(2024, 3, 15, 15, 30, tzinfo=UTC)
    assert tx.business_date == date(2024, 3, 15)
    assert tx.source_updated_at == datetime(2024, 3, 15, 15, 31, 10, tzinfo=UTC)


def test_created_and_updated_are_one_record(payload: Load) -> None:
    created = payload("transaction_created.json")
    updated = payload("transaction_created.json")
    updated["header"]["event_name"] = "moka.transaction.updated"
    updated["header"]["timestamp"] = "2024-03-16T00:40:00+07:00"

    first, second = transaction(created), transaction(updated)

    assert first.key == second.key
    assert first.fingerprint() == second.fingerprint()
    assert second.source_updated_at is not None and first.source_updated_at is not None
    assert second.source_updated_at > first.source_updated_at


@pytest.mark.parametrize(
    ("at", "instant"),
    [
        (JAKARTA, datetime(2024, 3, 15, 17, 20, tzinfo=UTC)),
        (MAKASSAR, datetime(2024, 3, 15, 16, 20, tzinfo=UTC)),
    ],
)
def test_naive_date_is_read_in_the_outlet_timezone(
    payload: Load, at: Any, instant: datetime
) -> None:
    tx = transaction(payload("transaction_created.json"), at)

    assert tx.occurred_at == instant
    # Twenty past midnight local time is still the previous day in UTC: the business day is local.
    assert tx.business_date == date(2024, 3, 16)


def test_utc_date_crosses_midnight_locally(payload: Load) -> None:
    body = payload("transaction_created.json")
    body["body"]["transaction"]["date"] = "2024-03-15T16:30:00Z"

    tx = transaction(body, MAKASSAR)

    assert tx.occurred_at == datetime(2024, 3, 15, 16, 30, tzinfo=UTC)
    assert tx.business_date == date(2024, 3, 16)


def test_refund_is_a_separate_record(payload: Load) -> None:
    event = to_event(payload("transaction_refunded.json"), JAKARTA)

    assert event.event_type == "moka.transaction.refunded"
    assert event.dedup_key == "c71e0d38-95b2-4e6a-b0f4-3a8d2c9e5f17"
    [refund] = event.records
    assert isinstance(refund, Transaction)
    assert refund.type is TransactionType.REFUND
    assert refund.external_id == "987650001:refund"
    assert refund.reverses_external_id == "987650001"
    assert refund.total == Decimal("1978900.00")
    assert refund.subtotal == Decimal("1799000.00")
    assert refund.tax == Decimal("179900.00")
    assert refund.rounding == Decimal(0)
    assert refund.payment_method is PaymentMethod.CARD
    assert refund.payment_method_label == "Debit BCA"
    assert refund.items[0].name == "Paket Tumpeng Nasi Kuning (30 pax)"
    assert refund.items[0].sku == "99001"
    # Refunded on the 17th, sold on the 15th: the refund books on the day it happened.
    assert refund.occurred_at == datetime(2024, 3, 17, 3, 5, tzinfo=UTC)
    assert refund.business_date == date(2024, 3, 17)
    assert refund.source_updated_at == refund.occurred_at


def test_refund_and_sale_do_not_collide(payload: Load) -> None:
    sale_body = payload("transaction_refunded.json")
    sale_body["header"]["event_name"] = "moka.transaction.created"

    sale, refund = transaction(sale_body), transaction(payload("transaction_refunded.json"))

    assert sale.key != refund.key
    assert sale.business_date == date(2024, 3, 15)
    assert (sale.total, sale.items) == (refund.total, refund.items)


def test_refund_with_negative_amounts_is_made_positive(payload: Load) -> None:
    body = payload("transaction_refunded.json")
    tx = body["body"]["transaction"]
    tx["total_collected"], tx["total_taxes"] = Decimal("-1978900.00"), Decimal("-179900.00")
    tx["subtotal"], tx["items"][0]["total_price"] = Decimal("-1799000.00"), -1799000
    tx["items"][0]["quantity"] = -1

    refund = transaction(body)

    assert (refund.total, refund.tax, refund.subtotal) == (
        Decimal("1978900.00"),
        Decimal("179900.00"),
        Decimal("1799000.00"),
    )
    assert (refund.items[0].quantity, refund.items[0].total) == (Decimal(1), Decimal(1799000))


def test_refund_needs_the_header_timestamp(payload: Load) -> None:
    body = payload("transaction_refunded.json")
    del body["header"]["timestamp"]

    with pytest.raises(InvalidRecord) as caught:
        to_event(body, JAKARTA)

    assert caught.value.field == "header.timestamp"


@pytest.mark.parametrize("event_name", sorted(ITEM_EVENTS))
def test_item_events_are_acknowledged_without_records(payload: Load, event_name: str) -> None:
    body = payload("item_updated.json")
    body["header"]["event_name"] = event_name

    event = to_event(body, JAKARTA)

    assert (event.event_type, event.records) == (event_name, [])
    assert event.dedup_key == "0b8e4f2c-6d13-4a7e-9f25-c8e1a7d3b960"


@pytest.mark.parametrize("event_name", ["moka.transaction.voided", "transaction.created", 7])
def test_unknown_event_type(payload: Load, event_name: Any) -> None:
    body = payload("transaction_created.json")
    body["header"]["event_name"] = event_name

    with pytest.raises(InvalidRecord) as caught:
        to_event(body, JAKARTA)

    assert caught.value.field == "header.event_name"
    assert caught.value.reason == f"unknown event type '{event_name}'"


def test_very_large_amount(payload: Load) -> None:
    body = payload("transaction_created.json")
    body["body"]["transaction"]["total_collected"] = Decimal("9999999999999.99")

    tx = transaction(body)

    assert tx.total == Decimal("9999999999999.99")
    assert tx.rounding == Decimal("9999999896639.04")


def test_missing_event_id_falls_back_to_the_body_hash(payload: Load) -> None:
    body = payload("transaction_created.json")
    del body["header"]["event_id"]

    assert to_event(body, JAKARTA).dedup_key is None


@pytest.mark.parametrize(
    "path",
    [
        "header.event_name",
        "body.transaction.id",
        "body.transaction.date",
        "body.transaction.subtotal",
        "body.transaction.total_collected",
        "body.transaction.items.0.name",
        "body.transaction.items.1.price",
        "body.transaction.items.2.quantity",
        "body.transaction.items.0.total_price",
    ],
)
def test_missing_field_is_named(payload: Load, path: str) -> None:
    body = payload("transaction_created.json")
    *parents, leaf = path.split(".")
    node = body
    for step in parents:
        node = node[int(step)] if isinstance(node, list) else node[step]
    del node[leaf]

    with pytest.raises(InvalidRecord) as caught:
        to_event(body, JAKARTA)

    assert caught.value.field == path
    assert caught.value.reason == "field required"


def test_version_needs_updated_at_or_header_timestamp(payload: Load) -> None:
    body = payload("transaction_created.json")
    del body["header"]["timestamp"]

    with pytest.raises(InvalidRecord) as caught:
        to_transaction(body, JAKARTA)

    assert caught.value.field == "header.timestamp"


BAD_AMOUNTS = ["abc", True, {"amount": 1}, "-Infinity", Decimal("-9396.45")]


@pytest.mark.parametrize(
    ("field", "bad"),
    [("total_collected", bad) for bad in [*BAD_AMOUNTS, None]]
    + [("total_taxes", bad) for bad in BAD_AMOUNTS],
)
def test_bad_amount_is_named(payload: Load, field: str, bad: Any) -> None:
    body = payload("transaction_created.json")
    body["body"]["transaction"][field] = bad

    with pytest.raises(InvalidRecord) as caught:
        to_transaction(body, JAKARTA)

    assert caught.value.field == f"body.transaction.{field}"


def test_optional_total_sent_as_null_is_zero(payload: Load) -> None:
    body = payload("transaction_created.json")
    body["body"]["transaction"]["total_gratuities"] = None

    assert transaction(body).service_charge == Decimal(0)


def test_items_must_be_a_list(payload: Load) -> None:
    body = payload("transaction_created.json")
    body["body"]["transaction"]["items"] = "Es Kopi Susu"

    with pytest.raises(InvalidRecord) as caught:
        to_transaction(body, JAKARTA)

    assert caught.value.field == "body.transaction.items"


def test_outlet_id_must_match_when_configured(payload: Load) -> None:
    body = payload("transaction_created.json")

    assert to_event(body, JAKARTA, moka_outlet_id="212345").records
    with pytest.raises(InvalidRecord) as caught:
        to_event(body, JAKARTA, moka_outlet_id="212399")

    assert caught.value.field == "header.outlet_id"
    assert caught.value.reason == "event for Moka outlet 212345, expected 212399"


def test_configured_outlet_id_requires_one_in_the_header(payload: Load) -> None:
    body = payload("item_updated.json")
    del body["header"]["outlet_id"]

    assert to_event(body, JAKARTA).records == []
    with pytest.raises(InvalidRecord) as caught:
        to_event(body, JAKARTA, moka_outlet_id="212345")

    assert caught.value.field == "header.outlet_id"


def test_equal_payloads_have_equal_fingerprints(payload: Load) -> None:
    first = transaction(payload("transaction_updated.json"))
    again = transaction(payload("transaction_updated.json"))
    trailing_zeros = payload("transaction_updated.json")
    trailing_zeros["body"]["transaction"]["total_taxes"] = Decimal("755.01250")

    assert first.fingerprint() == again.fingerprint()
    assert first.fingerprint() == transaction(trailing_zeros).fingerprint()


def test_changed_amount_changes_the_fingerprint(payload: Load) -> None:
    first = transaction(payload("transaction_updated.json"))
    changed = payload("transaction_updated.json")
    changed["body"]["transaction"]["total_taxes"] = Decimal("755.0126")

    assert first.fingerprint() != transaction(changed).fingerprint()
