"""Midtrans notifications → payments: signature, exact amounts, channels, statuses, order."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import SecretStr
from sambung.plugin import InvalidRecord, PaymentStatus, SignatureError, WebhookRequest
from sambung.testing import make_connector, outlet
from sambung_midtrans import MidtransConnector
from sambung_midtrans.mapping import dedup_key, to_payment, verify

Load = Callable[[str], Any]
KEY = (SecretStr("SB-Mid-server-TEST"),)
KEMANG = outlet("kemang", "Asia/Jakarta")
MAKASSAR = outlet("panakkukang", "Asia/Makassar")


def test_a_signed_notification_verifies(payload: Load) -> None:
    for name in (
        "settlement_bank_transfer.json",
        "settlement_qris.json",
        "refund_bank_transfer.json",
    ):
        verify(payload(name), KEY)


@pytest.mark.parametrize("field", ["signature_key", "gross_amount", "status_code", "order_id"])
def test_a_changed_or_missing_signed_field_is_refused(payload: Load, field: str) -> None:
    body = dict(payload("settlement_bank_transfer.json"))
    with pytest.raises(SignatureError):
        verify({**body, field: body[field][:-1] + "9"}, KEY)
    with pytest.raises(SignatureError):
        verify({k: v for k, v in body.items() if k != field}, KEY)


@pytest.mark.parametrize(
    "change",
    [
        {"order_id": "kemang-\ud800"},  # a lone surrogate: no UTF-8 to hash
        {"signature_key": "\u0661" * 128},  # Arabic-Indic digits: not hex
        {"signature_key": "é"},
    ],
)
def test_text_no_signature_can_cover_is_refused_not_a_crash(
    payload: Load, change: dict[str, str]
) -> None:
    with pytest.raises(SignatureError):
        verify({**payload("settlement_bank_transfer.json"), **change}, KEY)


def test_another_server_key_is_refused(payload: Load) -> None:
    with pytest.raises(SignatureError):
        verify(payload("settlement_bank_transfer.json"), (SecretStr("SB-Mid-server-other"),))


def test_a_body_that_is_not_json_is_refused_as_unsigned() -> None:
    connector = make_connector(MidtransConnector, {"mode": "webhook", "server_key": "k"})
    with pytest.raises(SignatureError):
        connector.verify(WebhookRequest(body=b"<html>", headers={}))


def test_a_settled_bank_transfer(payload: Load) -> None:
    p = to_payment(payload("settlement_bank_transfer.json"), KEMANG)
    assert (p.external_id, p.reference) == ("kemang-20261126-0042", "kemang-20261126-0042")
    assert p.amount == Decimal("87500.00") and p.status is PaymentStatus.PAID
    assert p.channel == "bank_transfer:bca"
    assert p.paid_at == p.occurred_at == datetime(2026, 11, 26, 13, 17, 41, tzinfo=UTC)
    assert p.business_date == date(2026, 11, 26)


def test_midtrans_times_are_jakarta_time_at_any_outlet(payload: Load) -> None:
    p = to_payment(payload("settlement_bank_transfer.json"), MAKASSAR)
    assert p.paid_at == datetime(2026, 11, 26, 13, 17, 41, tzinfo=UTC)


def test_qris_channel_names_the_issuer(payload: Load) -> None:
    p = to_payment(payload("settlement_qris.json"), KEMANG)
    assert p.channel == "qris:gopay" and p.amount == Decimal("27750")


def test_a_challenged_capture_is_not_paid(payload: Load) -> None:
    p = to_payment(payload("capture_challenge_card.json"), KEMANG)
    assert p.status is PaymentStatus.PENDING and p.paid_at is None
    assert p.channel == "credit_card:bni"
    accepted = to_payment(
        {**payload("capture_challenge_card.json"), "fraud_status": "accept"}, KEMANG
    )
    assert accepted.status is PaymentStatus.PAID


def test_pending_and_refund(payload: Load) -> None:
    assert to_payment(payload("pending_bank_transfer.json"), KEMANG).status is PaymentStatus.PENDING
    assert to_payment(payload("refund_bank_transfer.json"), KEMANG).status is PaymentStatus.REFUNDED


def version(body: Any, **change: Any) -> datetime:
    found = to_payment({**body, **change}, KEMANG).source_updated_at
    assert found is not None
    return found


def test_statuses_never_go_back_but_reversals_are_new_facts(payload: Load) -> None:
    body = payload("settlement_bank_transfer.json")
    pending = version(body, transaction_status="pending")
    settled = version(body)
    assert pending < settled  # a late pending after settlement is stale
    assert version(body, transaction_status="expire") < settled
    for reversal in ("deny", "partial_refund", "refund", "partial_chargeback", "chargeback"):
        assert version(body, transaction_status=reversal) > settled, reversal
    assert version(body, transaction_status="refund") > version(
        body, transaction_status="partial_refund"
    )


def test_duplicates_share_a_key_and_statuses_do_not(payload: Load) -> None:
    body = payload("settlement_bank_transfer.json")
    assert dedup_key(body) == dedup_key(json.loads(json.dumps(body)))
    assert dedup_key(body) != dedup_key({**body, "transaction_status": "pending"})


def test_unknown_fields_are_tolerated_and_unknown_statuses_named(payload: Load) -> None:
    body = {**payload("settlement_qris.json"), "new_field": {"x": 1}, "fraud_status": None}
    assert to_payment(body, KEMANG).status is PaymentStatus.PAID
    with pytest.raises(InvalidRecord) as err:
        to_payment({**body, "transaction_status": "levitating"}, KEMANG)
    assert err.value.field == "transaction_status"


@pytest.mark.parametrize("bad", ["1e5", "12,5.0.0", "", None])
def test_a_bad_amount_is_named(payload: Load, bad: Any) -> None:
    with pytest.raises(InvalidRecord) as err:
        to_payment({**payload("settlement_qris.json"), "gross_amount": bad}, KEMANG)
    assert err.value.field == "gross_amount"
