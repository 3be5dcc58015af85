"""Get Status answers → payments, and what the client makes of Midtrans's status codes; which
order id a POS sale names."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError
from sambung.plugin import AuthError, PaymentStatus, RequestRejected, RetriableError
from sambung.testing import make_connector, outlet
from sambung_midtrans import MidtransConnector
from sambung_midtrans.client import status_answer, status_path
from sambung_midtrans.fake import notification
from sambung_midtrans.mapping import sale_order_id, to_payment, verify

Load = Callable[[str], Any]
KEY = (SecretStr("SB-Mid-server-TEST"),)
KEMANG = outlet("kemang", "Asia/Jakarta")


def test_a_get_status_answer_is_signed_like_a_notification(payload: Load) -> None:
    for name in (
        "status_capture_card.json",
        "status_partial_refund_card.json",
        "status_pending_gopay.json",
        "status_settlement_gopay.json",
    ):
        verify(payload(name), KEY)


def test_an_accepted_card_capture_from_get_status_is_paid(payload: Load) -> None:
    body = status_answer("kemang-20261126-0051", payload("status_capture_card.json"))
    assert body is not None

    p = to_payment(body, KEMANG)

    assert (p.reference, p.status, p.amount) == (
        "kemang-20261126-0051",
        PaymentStatus.PAID,
        Decimal("64500"),
    )
    assert p.channel == "credit_card:bni"
    assert p.paid_at == datetime(2026, 11, 26, 7, 39, 33, tzinfo=UTC)  # 14:39:33 WIB


def test_a_partial_refund_from_get_status_is_a_later_fact_than_the_capture(payload: Load) -> None:
    captured = to_payment(payload("status_capture_card.json"), KEMANG)
    refunded = to_payment(payload("status_partial_refund_card.json"), KEMANG)

    assert refunded.status is PaymentStatus.REFUNDED
    assert refunded.paid_at == datetime(2026, 11, 26, 8, 0, 4, tzinfo=UTC)  # settlement_time
    assert refunded.source_updated_at is not None and captured.source_updated_at is not None
    assert refunded.source_updated_at > captured.source_updated_at


def test_a_pending_gopay_then_its_settlement(payload: Load) -> None:
    pending = to_payment(payload("status_pending_gopay.json"), KEMANG)
    settled = to_payment(payload("status_settlement_gopay.json"), KEMANG)

    assert (pending.status, pending.paid_at, pending.channel) == (
        PaymentStatus.PENDING,
        None,
        "gopay",
    )
    assert settled.status is PaymentStatus.PAID
    assert settled.paid_at == datetime(2026, 11, 26, 12, 3, 30, tzinfo=UTC)
    assert pending.source_updated_at is not None and settled.source_updated_at is not None
    assert pending.source_updated_at < settled.source_updated_at


def test_an_unknown_order_is_none_not_an_error(payload: Load) -> None:
    assert status_answer("nope", payload("status_not_found.json")) is None


@pytest.mark.parametrize(
    ("code", "error"),
    [("401", AuthError), ("429", RetriableError), ("500", RetriableError), ("503", RetriableError)],
)
def test_a_status_code_in_the_body_is_the_error_it_means(code: str, error: type) -> None:
    with pytest.raises(error):
        status_answer("o-1", {"status_code": code, "status_message": "no"})


def test_an_answer_that_is_no_transaction_is_refused_for_that_order() -> None:
    with pytest.raises(RequestRejected):
        status_answer("o-1", {"status_code": "400", "status_message": "Invalid order_id"})
    with pytest.raises(RetriableError):
        status_answer("o-1", ["not", "an", "object"])


@pytest.mark.parametrize("status", ["pending", "settlement", "expire", "deny", "refund"])
def test_every_transaction_code_is_a_transaction(status: str) -> None:
    body = notification(3, datetime(2026, 11, 26, 1, tzinfo=UTC), status, "k")
    assert status_answer(body["order_id"], body) == body


def test_an_order_id_is_escaped_in_the_path() -> None:
    assert status_path("PW#12/3") == "/v2/PW%2312%2F3/status"


def test_a_sale_names_its_order_by_the_configured_template() -> None:
    sale = {"external_id": "KMG-000417", "outlet": "kemang", "source_system": "pawoon"}
    assert sale_order_id(sale, "{external_id}") == "KMG-000417"
    assert sale_order_id(sale, "PW-{external_id}") == "PW-KMG-000417"
    assert sale_order_id(sale, "{outlet}-{external_id}") == "kemang-KMG-000417"
    assert sale_order_id({"outlet": "kemang"}, "{external_id}") is None


def test_an_order_id_template_names_only_sale_fields() -> None:
    base = {"mode": ["webhook", "poll"], "server_key": "k"}
    with pytest.raises(ValidationError, match="may name only"):
        make_connector(MidtransConnector, {**base, "order_id": "{total}"})
    with pytest.raises(ValidationError, match="may name only"):
        make_connector(MidtransConnector, {**base, "order_id": "fixed"})
    connector = make_connector(MidtransConnector, {**base, "order_id": "PW-{external_id}"})
    assert connector.settings.order_id == "PW-{external_id}"
