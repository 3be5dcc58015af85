"""Every delivery attempt is kept with its settlement, on both backends: listed, shown, pruned."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st
from sambung.delivery.attempts import DeliveryAttempts, add_delivery_routes
from sambung.delivery.dlq import DeadLetterFilter, DeadLetters
from sambung.delivery.sinks import Delivered, is_delivered
from sambung.redaction import MASK, secrets
from sambung.store import DeliveryQuery, Store
from sambung.store.base import MAX_ATTEMPT_RESPONSE, AttemptNote, OutboxSettlement, kept_answer
from sambung.testing.receiver import Receiver

from .test_outbox import SECRET, Harness, clock, configure

LEAKED = "receiver-leaked-token-0123456789"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    started = Receiver(SECRET)
    await started.start()
    yield started
    await started.stop()


@pytest.fixture
async def harness(tmp_path: Path, store: Store, receiver: Receiver) -> AsyncIterator[Harness]:
    loaded = configure(
        tmp_path,
        {
            "backend": {
                "type": "http",
                "url": receiver.url,
                "secret": SECRET,
                "retry_schedule": [0, 5, 5],
            }
        },
    )
    async with aiohttp.ClientSession() as session:
        built = Harness(store, loaded, clock(store), session)
        receiver.now = lambda: built.clock.now().timestamp()
        await built.dispatcher.open()
        yield built
        await built.dispatcher.close()


async def test_a_row_that_failed_twice_then_succeeded_lists_three_attempts(
    harness: Harness, receiver: Receiver
) -> None:
    secrets.learn(LEAKED)
    await harness.ingest("TRX-1")
    receiver.answer_with(500, body=f"database down, token={LEAKED}")
    receiver.answer_with(503, body="still starting")
    receiver.answer_with(200, body='{"ok": true}')
    first = harness.clock.now()
    assert await harness.drain() == 1
    harness.clock.advance(5)
    assert await harness.drain() == 1
    harness.clock.advance(5)
    assert await harness.drain() == 1

    [row] = await harness.outbox()
    attempts = await harness.store.list_delivery_attempts(row.id)
    assert [a.attempt for a in attempts] == [1, 2, 3]
    assert [a.outcome for a in attempts] == ["retry", "retry", "delivered"]
    assert [a.http_status for a in attempts] == [500, 503, 200]
    assert [a.error_type for a in attempts] == ["RetriableError", "RetriableError", None]
    assert attempts[0].response == f"database down, token={MASK}"
    assert attempts[0].error is not None and LEAKED not in attempts[0].error
    assert attempts[2].response == '{"ok": true}' and attempts[2].error is None
    assert [a.started_at for a in attempts] == [
        first,
        first + timedelta(seconds=5),
        first + timedelta(seconds=10),
    ]
    assert [a.next_attempt_at for a in attempts] == [
        first + timedelta(seconds=5),
        first + timedelta(seconds=10),
        None,
    ]
    assert all(a.latency_ms is not None and a.latency_ms >= 0 for a in attempts)
    assert {(a.sink, a.record_id, a.revision) for a in attempts} == {
        ("backend", row.record_id, row.revision)
    }

    service = DeliveryAttempts(harness.store)
    shown = await service.show(row.id)
    assert shown is not None
    assert shown["status"] == "delivered" and shown["external_id"] == "TRX-1"
    assert [a["http_status"] for a in shown["attempts"]] == [500, 503, 200]
    assert shown["latest"]["outcome"] == "delivered"
    assert await service.show(row.id + 1000) is None


async def test_deliveries_are_listed_newest_first_with_their_latest_attempt_and_filters(
    harness: Harness, receiver: Receiver
) -> None:
    await harness.ingest("TRX-1", "TRX-2")
    receiver.answer_with(500, times=1)  # the first row retries, the second is delivered
    assert await harness.drain() == 2
    service = DeliveryAttempts(harness.store)

    rows = await service.list()
    assert [r.external_id for r in rows] == ["TRX-2", "TRX-1"]
    assert [r.latest.outcome if r.latest else None for r in rows] == ["delivered", "retry"]
    assert [r.external_id for r in await service.list(status="pending")] == ["TRX-1"]
    assert [r.external_id for r in await service.list(sink="backend", outlet="kemang")] == [
        "TRX-2",
        "TRX-1",
    ]
    assert await service.list(sink="elsewhere") == []
    assert await service.list(outlet="elsewhere") == []
    assert len(await service.list(limit=1)) == 1


async def test_a_rejected_delivery_is_one_dead_attempt_listed_by_its_dead_letter(
    harness: Harness, receiver: Receiver
) -> None:
    await harness.ingest("TRX-1")
    receiver.answer_with(422, body='{"error": "unknown outlet"}')
    assert await harness.drain() == 1

    [entry] = harness.told
    dead_letters = DeadLetters(harness.store, harness.loaded, clock=harness.clock)
    shown = await dead_letters.show(entry.id)
    assert shown is not None
    assert shown["attempts"] == 1  # the entry's own count, as before
    [attempt] = shown["delivery_attempts"]
    assert attempt["outcome"] == "dead" and attempt["http_status"] == 422
    assert attempt["error_type"] == "DeliveryRejected"
    assert attempt["response"] == '{"error": "unknown outlet"}'
    assert attempt["next_attempt_at"] is None
    assert await dead_letters.find(DeadLetterFilter(stage="delivery")) == [entry]


async def test_retries_exhausted_keep_the_last_failure_class_on_the_dead_attempt(
    harness: Harness, receiver: Receiver
) -> None:
    await harness.ingest("TRX-1")
    receiver.answer_with(502, times=3)
    for _ in range(3):
        assert await harness.drain() == 1
        harness.clock.advance(5)
    [row] = await harness.outbox()
    attempts = await harness.store.list_delivery_attempts(row.id)
    assert [a.outcome for a in attempts] == ["retry", "retry", "dead"]
    assert attempts[-1].error_type == "RetriableError"
    assert attempts[-1].error is not None and attempts[-1].error.startswith("gave up after 3")


async def test_an_unreachable_receiver_is_an_attempt_with_its_error_class_and_no_status(
    tmp_path: Path, store: Store
) -> None:
    from sambung.testing.daemon import free_port

    loaded = configure(
        tmp_path,
        {"backend": {"type": "http", "url": f"http://127.0.0.1:{free_port()}/", "secret": SECRET}},
    )
    async with aiohttp.ClientSession() as session:
        harness = Harness(store, loaded, clock(store), session)
        await harness.dispatcher.open()
        try:
            await harness.ingest("TRX-1")
            assert await harness.drain() == 1
        finally:
            await harness.dispatcher.close()
    [row] = await harness.outbox()
    [attempt] = await store.list_delivery_attempts(row.id)
    assert attempt.outcome == "retry" and attempt.http_status is None
    assert attempt.error_type == "RetriableError" and attempt.response is None
    assert attempt.error is not None and "ClientConnectorError" in attempt.error


async def test_a_settlement_without_a_note_keeps_no_attempt(harness: Harness) -> None:
    await harness.ingest("TRX-1")
    [row] = await harness.store.claim_outbox(
        "backend", now=harness.clock.now(), limit=10, lease_seconds=60
    )
    await harness.store.settle_outbox(
        [OutboxSettlement(row.id, "delivered")], now=harness.clock.now()
    )
    assert await harness.store.list_delivery_attempts(row.id) == []
    [listed] = await harness.store.list_deliveries(DeliveryQuery())
    assert listed.status == "delivered" and listed.latest is None


async def test_the_store_cuts_and_masks_any_note_s_answer(harness: Harness) -> None:
    secrets.learn(LEAKED)
    await harness.ingest("TRX-1")
    [row] = await harness.store.claim_outbox(
        "backend", now=harness.clock.now(), limit=10, lease_seconds=60
    )
    note = AttemptNote("backend", row.record_id, row.revision, 1, _now(), response=LEAKED * 40)
    await harness.store.settle_outbox(
        [OutboxSettlement(row.id, "delivered", attempt=note)], now=harness.clock.now()
    )
    [attempt] = await harness.store.list_delivery_attempts(row.id)
    assert attempt.response is not None and attempt.response == kept_answer(note.response)
    assert len(attempt.response) <= MAX_ATTEMPT_RESPONSE and LEAKED not in attempt.response


def test_an_attempt_s_answer_is_masked_and_cut() -> None:
    secrets.learn(LEAKED)
    kept = kept_answer(LEAKED * 40)
    assert kept is not None
    assert len(kept) <= MAX_ATTEMPT_RESPONSE and LEAKED not in kept


def test_delivered_with_an_answer_counts_as_delivered() -> None:
    assert is_delivered(None) and is_delivered(Delivered(200, "ok"))
    assert not is_delivered(RuntimeError("x"))


async def test_attempts_past_their_retention_are_pruned_and_go_with_their_pruned_row(
    harness: Harness, receiver: Receiver
) -> None:
    await harness.ingest("TRX-1", "TRX-2")
    receiver.answer_with(500, times=1)  # TRX-1 stays pending with one attempt
    assert await harness.drain() == 2
    pending, delivered = sorted(await harness.outbox(), key=lambda r: r.status, reverse=True)
    assert (pending.status, delivered.status) == ("pending", "delivered")

    # Past the sink's retention (a week) the delivered row goes, and its attempt with it.
    harness.clock.advance(8 * 86400)
    assert await harness.dispatcher.prune() == 1
    assert await harness.store.list_delivery_attempts(delivered.id) == []
    assert len(await harness.store.list_delivery_attempts(pending.id)) == 1

    # Past `delivery.attempts_retention.days` (14 by default) any row's attempts go.
    harness.clock.advance(7 * 86400)
    assert await harness.dispatcher.prune_attempts() == 1
    assert await harness.store.list_delivery_attempts(pending.id) == []
    assert (await harness.store.counts())["delivery_attempts"] == 0


async def test_the_api_lists_and_shows_deliveries_and_refuses_bad_filters(
    harness: Harness, receiver: Receiver
) -> None:
    await harness.ingest("TRX-1")
    receiver.answer_with(500, body="nope")
    assert await harness.drain() == 1
    [row] = await harness.outbox()
    app = web.Application()
    add_delivery_routes(app, DeliveryAttempts(harness.store))
    async with TestClient(TestServer(app)) as client:
        listed = await _json(await client.get("/api/v1/deliveries?sink=backend&status=pending"))
        [only] = listed["deliveries"]
        assert only["id"] == row.id and only["latest"]["response"] == "nope"
        none = await _json(await client.get("/api/v1/deliveries?status=delivered"))
        assert none == {"deliveries": []}
        shown = await _json(await client.get(f"/api/v1/deliveries/{row.id}"))
        assert [a["http_status"] for a in shown["attempts"]] == [500]
        missing = await client.get(f"/api/v1/deliveries/{row.id + 99}")
        assert missing.status == 404
        bad = await client.get("/api/v1/deliveries?status=lost&limit=0")
        assert bad.status == 400
        problems = {p["path"] for p in (await bad.json())["problems"]}
        assert problems == {"status", "limit"}


async def _json(response: aiohttp.ClientResponse) -> Any:
    assert response.status == 200, await response.text()
    return await response.json()


def _now() -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC)


async def test_an_answer_with_a_nul_or_a_lone_surrogate_is_kept_spelled_out(
    harness: Harness, receiver: Receiver
) -> None:
    # PostgreSQL keeps no NUL in text: a receiver's odd answer must not fail the settle.
    await harness.ingest("TRX-1")
    receiver.answer_with(500, body="bad\x00answer")
    receiver.answer_with(200, body="ok\x00")
    assert await harness.drain() == 1
    harness.clock.advance(5)
    assert await harness.drain() == 1
    [row] = await harness.outbox()
    attempts = await harness.store.list_delivery_attempts(row.id)
    assert [a.response for a in attempts] == ["bad\\x00answer", "ok\\x00"]
    assert attempts[0].error == "HTTP 500: bad\\x00answer"


@given(answer=st.text(max_size=2000))
def test_any_answer_is_kept_storable_masked_and_cut(answer: str) -> None:
    secrets.learn(LEAKED)
    kept = kept_answer(answer + LEAKED)
    assert kept is not None and len(kept) <= MAX_ATTEMPT_RESPONSE
    assert "\x00" not in kept and LEAKED not in kept
    kept.encode("utf-8")  # no lone surrogate
    settled = OutboxSettlement(1, "pending", error=answer)
    assert settled.error is not None and "\x00" not in settled.error
    settled.error.encode("utf-8")


async def test_each_delivered_row_counts_once_in_the_metrics(
    harness: Harness, receiver: Receiver
) -> None:
    from sambung import metrics

    def delivered() -> float:
        labels = {"sink": "backend", "result": "delivered"}
        return metrics.REGISTRY.get_sample_value("sambung_deliveries_total", labels) or 0.0

    before = delivered()
    await harness.ingest("TRX-1", "TRX-2", "TRX-3")
    receiver.answer_with(500, body="busy")  # one of the three goes again later
    assert await harness.drain() == 3
    assert delivered() == before + 2
    harness.clock.advance(5)
    assert await harness.drain() == 1
    assert delivered() == before + 3
