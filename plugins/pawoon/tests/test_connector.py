"""The Pawoon connector end to end: signature checks, settings, and parse on raw bodies."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sambung.plugin import (
    InvalidPayload,
    InvalidRecord,
    InventoryLevel,
    Mode,
    Transaction,
    WebhookRequest,
)
from sambung.testing import make_connector, outlet, signed_request
from sambung_pawoon import PawoonConnector

Body = Callable[[str], bytes]

SECRET = "pawoon-webhook-secret-kemang"
HEADER = "X-Webhook-Signature"


def connector(**settings: object) -> PawoonConnector:
    return make_connector(
        PawoonConnector,
        {"mode": "webhook", "webhook_secret": SECRET, **settings},
        at=outlet("kemang", "Asia/Jakarta"),
    )


def signed(raw: bytes, secret: str = SECRET, header: str = HEADER) -> WebhookRequest:
    return signed_request(raw, secret=secret, header=header)


def test_declares_webhook_mode() -> None:
    assert PawoonConnector.name == "pawoon"
    assert PawoonConnector.modes == {Mode.WEBHOOK, Mode.POLL, Mode.FILE_DROP}
    assert connector().settings.signature_header == HEADER


def test_valid_signature_passes(body: Body) -> None:
    connector().verify(signed(body("transaction_created.json")))


def test_parse_transaction(body: Body) -> None:
    request = signed(body("transaction_created.json"))

    event = connector().parse(request)

    assert event.event_type == "transaction.created"
    [record] = event.records
    assert isinstance(record, Transaction)
    assert (record.outlet, record.external_id) == ("kemang", "TRX-KMG-20240316-000123")


def test_parse_inventory(body: Body) -> None:
    request = signed(body("inventory_updated.json"))

    event = connector().parse(request)

    assert event.event_type == "inventory.updated"
    assert [type(r) for r in event.records] == [InventoryLevel]


def test_parse_non_json_is_invalid_payload() -> None:
    request = signed(b"event_type=transaction.created")

    with pytest.raises(InvalidPayload):
        connector().parse(request)


def test_parse_unmappable_is_invalid_record() -> None:
    request = signed(b'{"event_type": "order.paid", "data": {}}')

    with pytest.raises(InvalidRecord) as caught:
        connector().parse(request)

    assert caught.value.field == "event_type"


def test_settings_need_a_secret() -> None:
    with pytest.raises(ValueError, match="webhook_secret"):
        make_connector(PawoonConnector, {"mode": "webhook"})
    with pytest.raises(ValueError, match="webhook_secret"):
        make_connector(PawoonConnector, {"mode": "webhook", "webhook_secret": []})
