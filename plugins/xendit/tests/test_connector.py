"""The Xendit connector in process: callback tokens, and callbacks through core's webhook
ingest into a real SQLite store (out of order, duplicated, expired versus paid)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from sambung.plugin import Mode, SignatureError, SystemClock, WebhookRequest
from sambung.testing import make_connector, outlet
from sambung.testing.core import Answer, SqliteStore, WebhookIngest
from sambung_xendit import XenditConnector
from sambung_xendit.fake import callback_headers

Body = Callable[[str], bytes]
TOKEN = "xnd-callback-token-kemang"


def connector(**settings: Any) -> XenditConnector:
    return make_connector(
        XenditConnector,
        {"mode": "webhook", "callback_token": TOKEN, **settings},
        at=outlet("kemang", "Asia/Jakarta"),
    )


def callback(body: bytes, token: str = TOKEN) -> WebhookRequest:
    return WebhookRequest(body=body, headers=callback_headers(token))


def test_settings_need_the_token_in_webhook_mode_and_the_key_in_poll_mode() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="callback_token"):
        XenditConnector.Settings.model_validate({"mode": "webhook"})
    with pytest.raises(ValidationError, match="secret_key"):
        XenditConnector.Settings.model_validate(
            {"mode": ["webhook", "poll"], "callback_token": "t"}
        )
    assert XenditConnector.modes == {Mode.WEBHOOK, Mode.POLL}


@pytest.mark.parametrize(
    "headers",
    [{}, {"x-callback-token": ""}, {"x-callback-token": "wrong"}, {"x-callback-token": TOKEN[:-1]}],
    ids=["missing", "empty", "wrong", "prefix"],
)
def test_a_missing_or_wrong_token_is_refused(body: Body, headers: dict[str, str]) -> None:
    with pytest.raises(SignatureError):
        connector().verify(WebhookRequest(body=body("invoice_paid.json"), headers=headers))


def test_while_rotating_both_tokens_are_accepted(body: Body) -> None:
    rotating = connector(callback_token=["new-token", "old-token"])
    for token in ("new-token", "old-token"):
        rotating.verify(callback(body("invoice_paid.json"), token))
    with pytest.raises(SignatureError):
        rotating.verify(callback(body("invoice_paid.json"), "retired-token"))


def test_the_token_is_checked_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import hmac

    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    with pytest.raises(SignatureError):
        connector().verify(callback(b"{}", "wrong"))
    assert compared == [(TOKEN.encode(), b"wrong")]


def test_parse_names_the_event_by_status(body: Body) -> None:
    event = connector().parse(callback(body("invoice_settled.json")))

    assert event.event_type == "invoice.settled"
    assert event.dedup_key == "invoice:65a1f3c2e8b9d40012ab34cd:SETTLED"
    [payment] = event.records
    assert payment.external_id == "65a1f3c2e8b9d40012ab34cd"


# -- through core's webhook ingest -------------------------------------------------------------


@pytest.fixture
def post(store: SqliteStore) -> Callable[[bytes], Any]:
    ingest = WebhookIngest(store, lambda _o, _k: ("books",), SystemClock(), lambda _e: None)
    xendit = connector()

    async def send(raw: bytes, token: str = TOKEN) -> Answer:
        return await ingest.handle(xendit, callback(raw, token), "application/json")

    return send


async def final_status(store: SqliteStore) -> tuple[str, int, int]:
    [record] = await store.list_records()
    outbox = await store.list_outbox()
    return json.loads(record.payload)["status"], record.revision, len(outbox)


async def test_a_late_pending_does_not_overwrite_paid(
    store: SqliteStore, post: Any, body: Body
) -> None:
    assert (await post(body("invoice_paid.json"))).status == 200
    late = await post(body("invoice_pending.json"))

    assert late.status == 200 and late.body.get("stale") is True
    assert await final_status(store) == ("paid", 1, 1)


async def test_settled_before_paid_ends_settled(store: SqliteStore, post: Any, body: Body) -> None:
    for name in ("invoice_settled.json", "invoice_pending.json", "invoice_paid.json"):
        assert (await post(body(name))).status == 200

    assert await final_status(store) == ("settled", 1, 1)


async def test_in_order_each_status_is_one_revision(
    store: SqliteStore, post: Any, body: Body
) -> None:
    for name in ("invoice_pending.json", "invoice_paid.json", "invoice_settled.json"):
        assert (await post(body(name))).status == 200

    assert await final_status(store) == ("settled", 3, 3)


async def test_duplicates_are_no_ops(store: SqliteStore, post: Any, body: Body) -> None:
    first = await post(body("invoice_paid.json"))
    # Xendit's retry of the same status, re-serialised: same invoice id and status.
    again = await post(json.dumps(json.loads(body("invoice_paid.json")), indent=4).encode())
    exact = await post(body("invoice_paid.json"))

    assert first.body["duplicate"] is False
    assert again.body["duplicate"] is exact.body["duplicate"] is True
    assert again.body["internal_id"] == first.body["internal_id"]
    assert await final_status(store) == ("paid", 1, 1)
    assert (await store.counts())["raw_events"] == 1


def expired_version_of(paid: dict[str, Any], updated: str) -> bytes:
    expired = {**paid, "status": "EXPIRED", "updated": updated}
    for key in ("paid_amount", "paid_at", "payment_channel", "fees_paid_amount"):
        expired.pop(key)
    return json.dumps(expired).encode()


async def test_an_expiry_notice_after_payment_does_not_undo_it(
    store: SqliteStore, post: Any, body: Body
) -> None:
    paid = json.loads(body("invoice_paid.json"))
    # Even stamped a day after the payment, an expiry does not undo money received.
    await post(json.dumps(paid).encode())
    late = await post(expired_version_of(paid, "2026-11-27T13:15:42.118Z"))

    assert late.body.get("stale") is True
    assert await final_status(store) == ("paid", 1, 1)


async def test_a_payment_after_an_expiry_wins(store: SqliteStore, post: Any, body: Body) -> None:
    paid = json.loads(body("invoice_paid.json"))
    await post(expired_version_of(paid, "2026-11-27T13:15:42.118Z"))
    answer = await post(json.dumps(paid).encode())

    assert answer.body.get("stale") is None
    assert await final_status(store) == ("paid", 2, 2)


async def test_a_wrong_token_stores_nothing(store: SqliteStore, post: Any, body: Body) -> None:
    answer = await post(body("invoice_paid.json"), "not-the-token")

    assert answer.status == 401
    counts = await store.counts()
    assert counts["raw_events"] == counts["records"] == counts["dead_letters"] == 0


async def test_an_unknown_status_is_dead_lettered_with_the_field(
    store: SqliteStore, post: Any, body: Body
) -> None:
    raw = json.dumps({**json.loads(body("invoice_paid.json")), "status": "VOIDED"}).encode()
    answer = await post(raw)

    assert (answer.status, answer.body["field"]) == (422, "status")
    assert (await store.counts())["dead_letters"] == 1
