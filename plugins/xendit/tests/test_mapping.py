"""Recorded Xendit invoices → payments: amounts, fees, times, statuses and their order."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sambung.plugin import InvalidRecord, PaymentStatus
from sambung.testing import outlet
from sambung_xendit.mapping import dedup_key, to_payment, version

Payload = Callable[[str], Any]
KEMANG = outlet("kemang", "Asia/Jakarta")


def test_a_paid_bank_transfer(payload: Payload) -> None:
    payment = to_payment(payload("invoice_paid.json"), KEMANG)

    assert (payment.outlet, payment.source_system) == ("kemang", "xendit")
    assert payment.external_id == "65a1f3c2e8b9d40012ab34cd"
    assert payment.reference == "kemang-order-20261126-0042"
    assert (payment.amount, payment.fee, payment.currency) == (Decimal(87500), Decimal(4440), "IDR")
    assert (payment.status, payment.channel) == (PaymentStatus.PAID, "BCA")
    paid_at = datetime(2026, 11, 26, 13, 21, 7, 512000, tzinfo=UTC)
    assert payment.paid_at == payment.occurred_at == paid_at
    assert payment.business_date == date(2026, 11, 26)  # 20:21 WIB


def test_the_fee_falls_back_to_paid_less_received_and_stays_exact(payload: Payload) -> None:
    payment = to_payment(payload("invoice_paid_qris.json"), KEMANG)

    assert payment.amount == Decimal("33300.5")
    assert payment.fee == Decimal("233.1")
    assert payment.channel == "QRIS"


def test_business_date_is_the_local_day_money_moved(payload: Payload) -> None:
    # Paid 16:05 UTC: still 26 November in Jakarta, already the 27th in Jayapura (WIT).
    invoice = payload("invoice_paid_qris.json")
    assert to_payment(invoice, KEMANG).business_date == date(2026, 11, 26)
    papua = outlet("jayapura", "Asia/Jayapura")
    assert to_payment(invoice, papua).business_date == date(2026, 11, 27)


def test_a_pending_invoice_has_no_payment_time_and_no_fee(payload: Payload) -> None:
    payment = to_payment(payload("invoice_pending.json"), KEMANG)

    assert (payment.status, payment.paid_at, payment.fee) == (PaymentStatus.PENDING, None, 0)
    assert payment.amount == Decimal(87500)
    assert payment.occurred_at == datetime(2026, 11, 26, 13, 15, 42, 118000, tzinfo=UTC)
    assert payment.channel is None


def test_an_expired_invoice_is_dated_by_its_issue(payload: Payload) -> None:
    payment = to_payment(payload("invoice_expired.json"), KEMANG)

    assert (payment.status, payment.paid_at) == (PaymentStatus.EXPIRED, None)
    assert payment.occurred_at == datetime(2026, 11, 26, 14, 2, 10, 955000, tzinfo=UTC)
    assert payment.business_date == date(2026, 11, 26)


def test_versions_follow_the_lifecycle(payload: Payload) -> None:
    pending, paid, settled = (
        to_payment(payload(f"invoice_{name}.json"), KEMANG)
        for name in ("pending", "paid", "settled")
    )
    assert pending.source_updated_at and paid.source_updated_at and settled.source_updated_at
    assert pending.source_updated_at < paid.source_updated_at < settled.source_updated_at


def test_at_the_same_instant_the_lifecycle_breaks_the_tie() -> None:
    at = datetime(2026, 11, 26, 13, 21, 8, 34000, tzinfo=UTC)
    order = [version(at, at, status) for status in ("PENDING", "EXPIRED", "PAID", "SETTLED")]

    assert order == sorted(order) and len(set(order)) == 4


def test_paid_outranks_expired_whatever_the_clocks_say(payload: Payload) -> None:
    paid = to_payment(payload("invoice_paid.json"), KEMANG)
    # Expired a day after it was paid (Xendit does not do that; if it did, money still wins).
    expired = {**payload("invoice_pending.json"), "status": "EXPIRED"}
    expired["updated"] = "2026-11-27T13:15:42.118Z"
    late = to_payment(expired, KEMANG)

    assert late.source_updated_at and paid.source_updated_at
    assert late.source_updated_at < paid.source_updated_at
    assert (
        late.source_updated_at
        > to_payment(payload("invoice_pending.json"), KEMANG).source_updated_at
    )


def test_a_paid_version_is_when_it_was_paid(payload: Payload) -> None:
    paid = to_payment(payload("invoice_paid.json"), KEMANG)
    at = datetime(2026, 11, 26, 13, 21, 8, 34000, tzinfo=UTC)  # its `updated`
    assert paid.source_updated_at == at + timedelta(microseconds=2)


def test_the_version_is_not_content(payload: Payload) -> None:
    first = payload("invoice_paid.json")
    later = {**first, "updated": "2026-11-26T13:30:00.000Z"}
    assert to_payment(first, KEMANG).fingerprint() == to_payment(later, KEMANG).fingerprint()


def test_dedup_key_is_invoice_and_status(payload: Payload) -> None:
    assert dedup_key(payload("invoice_paid.json")) == "invoice:65a1f3c2e8b9d40012ab34cd:PAID"
    assert dedup_key(payload("invoice_settled.json")).endswith(":SETTLED")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"status": "VOIDED"}, "status"),
        ({"status": None}, "status"),
        ({"id": None}, "id"),
        ({"external_id": ""}, "external_id"),
        ({"created": "yesterday"}, "created"),
        ({"paid_amount": "lots"}, "paid_amount"),
        ({"paid_amount": -5}, "paid_amount"),
    ],
)
def test_what_does_not_map_names_the_field(
    payload: Payload, change: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidRecord) as caught:
        to_payment({**payload("invoice_paid.json"), **change}, KEMANG)
    assert caught.value.field == field


def test_a_listed_page_maps_row_by_row(payload: Payload) -> None:
    payments = [to_payment(row, KEMANG) for row in payload("invoices_page.json")]

    assert [p.status for p in payments] == [PaymentStatus.EXPIRED, PaymentStatus.PAID]


def test_the_fee_is_paid_minus_received_when_fees_paid_amount_says_zero(
    payload: Payload,
) -> None:
    payment = to_payment(payload("invoice_paid_fee_in_received.json"), KEMANG)
    assert (payment.amount, payment.fee, payment.received_amount) == (50000, 2500, 47500)
    assert payment.channel == "OVO"


def test_fees_list_when_there_is_no_received_amount(payload: Payload) -> None:
    row = dict(payload("invoice_paid_fee_in_received.json"))
    del row["adjusted_received_amount"]
    payment = to_payment(row, KEMANG)
    assert (payment.fee, payment.received_amount) == (2500, 47500)


def test_fees_paid_amount_alone(payload: Payload) -> None:
    row = dict(payload("invoice_paid.json"))
    del row["adjusted_received_amount"]
    payment = to_payment(row, KEMANG)
    assert (payment.fee, payment.received_amount) == (4440, 83060)


def test_no_fee_fields_leave_received_unknown(payload: Payload) -> None:
    row = {k: v for k, v in payload("invoice_paid.json").items() if "fee" not in k}
    del row["adjusted_received_amount"]
    payment = to_payment(row, KEMANG)
    assert (payment.fee, payment.received_amount) == (0, None)


def test_an_updated_before_paid_at_still_orders_paid_after_pending(payload: Payload) -> None:
    paid = to_payment(payload("invoice_paid_fee_in_received.json"), KEMANG)
    pending = to_payment(
        {**payload("invoice_paid_fee_in_received.json"), "status": "PENDING", "paid_at": None},
        KEMANG,
    )
    assert paid.source_updated_at is not None and pending.source_updated_at is not None
    assert paid.source_updated_at > pending.source_updated_at
    assert paid.source_updated_at >= datetime(2026, 11, 26, 13, 21, 7, tzinfo=UTC)
