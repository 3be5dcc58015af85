"""WebhookIngest in process: the dead-letter hook fires once per new entry."""

from __future__ import annotations

from sambung.clock import SystemClock
from sambung.store import DeadLetter, Store
from sambung.testing import make_connector, signed_request
from sambung.webhooks import WebhookIngest
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
