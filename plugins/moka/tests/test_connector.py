"""The Moka connector end to end: signature checks, settings, and parse on raw bodies."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sambung.plugin import (
    InvalidPayload,
    InvalidRecord,
    Mode,
    Transaction,
    TransactionType,
    WebhookRequest,
)
from sambung.testing import make_connector, outlet, signed_request
from sambung_moka import MokaConnector

Body = Callable[[str], bytes]

SECRET = "moka-webhook-secret-kemang"
HEADER = "X-Moka-Signature"


def connector(**settings: object) -> MokaConnector:
    return make_connector(
        MokaConnector,
        {"mode": "webhook", "webhook_secret": SECRET, **settings},
        at=outlet("kemang", "Asia/Jakarta"),
    )


def signed(raw: bytes, secret: str = SECRET, header: str = HEADER) -> WebhookRequest:
    return signed_request(raw, secret=secret, header=header)


def test_declares_webhook_mode() -> None:
    assert MokaConnector.name == "moka"
    assert MokaConnector.modes == {Mode.WEBHOOK, Mode.POLL, Mode.FILE_DROP}
    settings = connector().settings
    assert (settings.signature_header, settings.outlet_id) == (HEADER, None)


def test_valid_signature_passes(body: Body) -> None:
    connector().verify(signed(body("transaction_created.json")))


def test_parse_sale(body: Body) -> None:
    event = connector().parse(signed(body("transaction_created.json")))

    assert event.event_type == "moka.transaction.created"
    assert event.dedup_key == "5f0c1e7a-3b9d-4c21-9a58-2d7e6b14c0a1"
    [record] = event.records
    assert isinstance(record, Transaction)
    assert (record.outlet, record.external_id) == ("kemang", "987654321")


def test_parse_refund(body: Body) -> None:
    event = connector().parse(signed(body("transaction_refunded.json")))

    [record] = event.records
    assert isinstance(record, Transaction)
    assert (record.type, record.external_id) == (TransactionType.REFUND, "987650001:refund")
    assert event.dedup_key == "c71e0d38-95b2-4e6a-b0f4-3a8d2c9e5f17"


def test_parse_item_event(body: Body) -> None:
    event = connector().parse(signed(body("item_updated.json")))

    assert (event.event_type, event.records) == ("moka.item.updated", [])


def test_parse_non_json_is_invalid_payload() -> None:
    with pytest.raises(InvalidPayload):
        connector().parse(signed(b"<html>502 Bad Gateway</html>"))


def test_outlet_id_setting(body: Body) -> None:
    # Moka outlet ids are numbers; a bare number in the YAML must still work.
    ours = connector(outlet_id=212345)
    theirs = connector(outlet_id="212399")
    request = signed(body("transaction_created.json"))

    assert ours.settings.outlet_id == "212345"
    assert ours.parse(request).records
    with pytest.raises(InvalidRecord) as caught:
        theirs.parse(request)
    assert caught.value.field == "header.outlet_id"


def test_unknown_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="signature_algorithm"):
        connector(signature_algorithm="sha1")
