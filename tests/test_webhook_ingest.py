"""WebhookIngest in process: the dead-letter hook fires once per new entry."""

from __future__ import annotations

import pytest
import structlog.testing
from sambung.clock import SystemClock
from sambung.intake.webhooks import WebhookIngest
from sambung.store import DeadLetter, DeadLetterQuery, Store
from sambung.testing import make_connector, signed_request
from sambung_pawoon.connector import PawoonConnector


async def test_dead_letter_hook_fires_once_per_new_entry(store: Store) -> None:
    told: list[DeadLetter] = []
    ingest = WebhookIngest(store, lambda outlet, kind: (), SystemClock(), told.append)
    pawoon = make_connector(PawoonConnector, {"mode": "webhook", "webhook_secret": "s3cret"})
    bad = signed_request(
        b'{"event_type": "transaction.created", "data": {}}',
        secret="s3cret",
        header="X-Webhook-Signature",
    )

    first = await ingest.handle(pawoon, bad, "application/json")
    again = await ingest.handle(pawoon, bad, "application/json")

    assert first.status == again.status == 422
    assert [entry.id for entry in told] == [first.body["dead_letter_id"]]
    assert told[0].stage == "ingest" and told[0].connector == "pawoon"
    assert told[0].field == first.body["field"]


@pytest.mark.parametrize(
    "field",
    [
        '"payment_method": "QR\\ud800IS"',  # a lone surrogate: no UTF-8 can hold it
        '"transaction_id": "TRX-\\udfff"',
        '"transaction_id": "TRX-\\u0000"',
    ],
)
async def test_text_the_store_cannot_keep_is_422_with_the_raw_body_kept(
    store: Store, field: str
) -> None:
    ingest = WebhookIngest(store, lambda outlet, kind: (), SystemClock(), lambda entry: None)
    pawoon = make_connector(PawoonConnector, {"mode": "webhook", "webhook_secret": "s3cret"})
    body = (
        '{"event_type": "transaction.created", "data": {"transaction_id": "TRX-1", '
        '"total": 27800, "tax": 2750, "timestamp": "2026-11-26 20:15:00", '
        '"payment_method": "QRIS", '
        f'"items": [], {field}}}}}'
    ).encode()
    answer = await ingest.handle(
        pawoon, signed_request(body, secret="s3cret", header="X-Webhook-Signature"), None
    )

    assert answer.status == 422, answer.body
    [letter] = await store.find_dead_letters(DeadLetterQuery())
    assert letter.id == answer.body["dead_letter_id"]
    raw = await store.get_raw_event(answer.body["raw_event_id"])
    assert raw is not None and raw.body == body


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"[" * 100_000 + b"]" * 100_000, 400),
        (b'{"event_type": "transaction.created", "data": ' + b"[" * 100_000, 400),
        (b'{"a": ' * 100_000 + b"1" + b"}" * 100_000, 400),
        # Deep, yet within what the decoder can hold: refused by the mapping, not by a crash.
        (b'{"event_type": "transaction.created", "data": ' + b"[" * 900 + b"]" * 900 + b"}", 422),
    ],
    ids=["array-100k", "unclosed-100k", "object-100k", "array-900"],
)
async def test_deeply_nested_json_is_a_clean_dead_letter_without_a_traceback(
    store: Store, body: bytes, status: int
) -> None:
    ingest = WebhookIngest(store, lambda outlet, kind: (), SystemClock(), lambda entry: None)
    pawoon = make_connector(PawoonConnector, {"mode": "webhook", "webhook_secret": "s3cret"})
    request = signed_request(body, secret="s3cret", header="X-Webhook-Signature")

    with structlog.testing.capture_logs() as logged:
        answer = await ingest.handle(pawoon, request, "application/json")

    assert answer.status == status, answer.body
    raw = await store.get_raw_event(answer.body["raw_event_id"])
    assert raw is not None and raw.body == body
    [letter] = await store.find_dead_letters(DeadLetterQuery())
    assert letter.id == answer.body["dead_letter_id"]
    loud = [e for e in logged if e["log_level"] in ("error", "critical") or "exc_info" in e]
    assert not loud, loud
