"""Fuzzing every installed webhook connector through the daemon's real public app.

Bodies are signed the vendor's way (`WebhookConnector.signed`), so they get past `verify` to
the parser: random bytes, random JSON with hostile leaves, and each connector's own realistic
webhooks with fields replaced, dropped, duplicated or wrapped, sometimes damaged byte-wise
after. Whatever arrives, the answer is a documented status, bad input is dead-lettered with
its raw body kept byte for byte, and every record stored is well formed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import given
from hypothesis import strategies as st
from sambung.connectors import Mode, WebhookRequest
from sambung.parse import loads
from sambung.runtime.daemon import Daemon
from sambung.testing.manual_clock import ManualClock

from .harness import (
    MAX_BODY_BYTES,
    REGISTRY,
    STATUSES,
    block_for,
    check_record,
    check_store,
    connectors_with,
    daemon_app,
    examples,
    fuzz,
    recorded,
    replay_all,
    target,
    webhook_path,
)
from .strategies import Verbatim, byte_damage, emit, json_values, mutated

WEBHOOK_CONNECTORS = connectors_with(Mode.WEBHOOK)


def test_every_webhook_connector_in_the_repo_is_fuzzed() -> None:
    # Discovery, not a list: a connector added later is fuzzed without editing this file.
    assert {"pawoon", "moka", "xendit", "midtrans"} <= set(WEBHOOK_CONNECTORS)


class Intake:
    """Posts to one connector's webhook URL and checks each answer against the invariants."""

    def __init__(self, daemon: Daemon, client: TestClient[Any, Any], name: str) -> None:
        self.daemon, self.client, self.name = daemon, client, name
        self.connector = target(daemon, name)
        self.examples = [loads(request.body) for request in examples(self.connector)]
        self.posted = 0
        self.lettered: set[int] = set()  # raw events whose dead letter this intake has seen

    async def post(self, request: WebhookRequest) -> tuple[int, dict[str, Any]]:
        """POST one request; (status, JSON answer)."""
        self.posted += 1
        async with self.client.post(
            webhook_path(self.name), data=request.body, headers=dict(request.headers)
        ) as answer:
            return answer.status, await answer.json(content_type=None)

    def _sign(self, body: bytes) -> WebhookRequest | None:
        try:
            return self.connector.signed(body)
        except RecursionError:  # too deep for the test's own signing to read: sent unsigned
            return None

    async def send(self, body: bytes, *, sign: bool = True) -> int:
        """Post `body` (signed when it can be) and check the answer; returns the status."""
        signed = self._sign(body) if sign else None
        request = signed or WebhookRequest(body=body, headers={"Content-Type": "application/json"})
        status, answer = await self.post(request)
        sent = request.body
        assert status in STATUSES, (status, answer, sent[:300])
        if len(sent) > MAX_BODY_BYTES:
            assert status == 413, (status, answer)
            return status
        if signed is not None:
            assert status != 401, ("a signed body was refused", answer, sent[:300])
        if status == 401:
            # Refused by a verifier that read the input, never by one that crashed on it.
            assert answer["message"] == "signature missing or invalid", answer
        if status in (400, 422):
            assert answer["raw_event_id"] is not None, answer
            raw = await self.daemon.store.get_raw_event(answer["raw_event_id"])
            assert raw is not None and raw.body == sent, "the raw body was not kept as sent"
            raw_event_id = answer["raw_event_id"]
            if answer.get("dead_letter_id") is None:  # a resend: its letter is the first one's
                assert raw_event_id in self.lettered, answer
            else:
                letter = await self.daemon.store.get_dead_letter(answer["dead_letter_id"])
                assert letter is not None and letter.raw_event_id == raw_event_id, letter
                assert letter.status == "open" and letter.connector == self.name, letter
                self.lettered.add(raw_event_id)
        # A mapping that raised something other than a typed error is a bug, whatever the input.
        assert answer.get("error") != "mapping_failed", answer
        if status == 200:
            assert answer["success"] is True, answer
            for record in self.connector.parse(request).records:
                check_record(record)
        return status


@pytest.fixture(params=WEBHOOK_CONNECTORS)
async def intake(
    request: pytest.FixtureRequest, sambung_store_url: str, tmp_path: Path, clock: ManualClock
) -> AsyncIterator[Intake]:
    """Every webhook connector in turn, behind the daemon's public app, on each store."""
    name: str = request.param
    blocks = {name: block_for(REGISTRY.connectors[name], Mode.WEBHOOK)}
    async with daemon_app(tmp_path, clock, blocks, sambung_store_url) as (daemon, client):
        intake = Intake(daemon, client, name)
        assert intake.examples, f"{name} offers no example_webhook() to mutate"
        # The plugin's recorded payloads that are webhooks it accepts join the examples.
        for body in recorded(name, ".json"):
            signed = intake.connector.signed(body)
            if signed is not None and (await intake.post(signed))[0] == 200:
                intake.examples.append(loads(body))
        probe = intake.connector.signed(b"{}")
        assert probe is not None or name == "midtrans", f"{name} cannot sign: add signed()"
        yield intake
        # Every dead letter replayed, as after a fix: still failing, or replayed; never raising.
        await replay_all(daemon.store, daemon.loaded, clock)
        await check_store(daemon.store)


@fuzz(200)
@given(data=st.data())
async def test_mutated_realistic_webhooks(intake: Intake, data: st.DataObject) -> None:
    document = data.draw(st.sampled_from(intake.examples), label="example")
    body = emit(data.draw(mutated(document), label="mutated")).encode()
    if data.draw(st.integers(0, 4), label="damage") == 0:
        body = data.draw(byte_damage(body), label="damaged")
    await intake.send(body)


@fuzz(100)
@given(body=st.one_of(st.binary(max_size=300), json_values().map(lambda v: emit(v).encode())))
async def test_random_signed_bodies(intake: Intake, body: bytes) -> None:
    await intake.send(body)


@fuzz(50)
@given(body=st.binary(max_size=300))
async def test_unsigned_bodies_are_refused_and_nothing_is_kept(intake: Intake, body: bytes) -> None:
    status, answer = await intake.post(WebhookRequest(body=body, headers={}))
    assert status == 401, answer
    assert answer["message"] == "signature missing or invalid", answer
    assert "raw_event_id" not in answer


async def test_replaying_text_no_store_keeps_is_still_failing_not_a_crash(
    tmp_path: Path, clock: ManualClock
) -> None:
    # Found by the fuzzing: the body maps (parse accepts the lone surrogate), only the store
    # refuses it, so the replay raised InvalidRecord out of `sambung dlq replay` and the API.
    blocks = {"pawoon": block_for(REGISTRY.connectors["pawoon"], Mode.WEBHOOK)}
    url = f"sqlite:///{tmp_path / 'sambung.db'}"
    async with daemon_app(tmp_path, clock, blocks, url) as (daemon, client):
        intake = Intake(daemon, client, "pawoon")
        document = dict(intake.examples[0])
        document["data"] = {**document["data"], "payment_method": Verbatim('"QR\\ud800IS"')}
        assert await intake.send(emit(document).encode()) == 422
        assert await replay_all(daemon.store, daemon.loaded, clock) == {"still_failing": 1}
