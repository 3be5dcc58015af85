"""The redaction registry: every form of every known secret is masked, wherever text leaves."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
from collections.abc import Iterator
from urllib.parse import quote, quote_plus

import pytest
import structlog
from pydantic import SecretStr
from sambung import logs
from sambung.auth.tokens import Token, TokenCache
from sambung.redaction import LEARNED_LIMIT, MASK, Secrets, secrets
from sambung.store.base import ConnectionState, ConnectionStatus, DeadLetterIn, OutboxSettlement

SECRET = "s3cr+t/Value=="


@pytest.fixture
def registry() -> Iterator[Secrets]:
    yield Secrets()


def test_masks_the_value_and_the_encodings_an_echo_uses(registry: Secrets) -> None:
    registry.configure([SECRET])
    basic = base64.b64encode(f"{SECRET}:".encode()).decode()
    for form in (
        SECRET,
        quote(SECRET, safe=""),
        quote_plus(SECRET),
        json.dumps(SECRET)[1:-1].replace("/", "\\/"),
        basic,
        basic.rstrip("="),
    ):
        masked = registry.redact(f"vendor said: {form}!")
        assert form not in masked and MASK in masked, form


def test_an_authorization_header_teaches_its_credential_and_a_basic_pair(
    registry: Secrets,
) -> None:
    pair = base64.b64encode(b"client-id:client-password").decode()
    registry.learn_authorization(f"Basic {pair}")
    registry.learn_authorization("Bearer bearer-token-1")
    text = f"got Basic {pair} (client-id:client-password), Bearer bearer-token-1"
    masked = registry.redact(text)
    assert "client-password" not in masked and pair not in masked
    assert "bearer-token-1" not in masked
    # A per-request HMAC signature is no credential to keep.
    registry.learn_authorization('hmac username="u", signature="abcdefgh"')
    assert registry.redact("abcdefgh") == "abcdefgh"


def test_learned_tokens_are_bounded_newest_kept() -> None:
    registry = Secrets(limit=8)
    for n in range(10):
        registry.learn(f"token-number-{n:06d}")
    assert registry.redact("token-number-000000 token-number-000001") == (
        "token-number-000000 token-number-000001"
    )
    assert registry.redact("token-number-000002 token-number-000009") == f"{MASK} {MASK}"


def test_many_secrets_mask_a_long_line_quickly() -> None:
    registry = Secrets()
    registry.learn(*(f"tok-{n:04d}-{'x' * 30}" for n in range(LEARNED_LIMIT)))
    line = "an ordinary log line without secrets " * 2000 + f"tok-0042-{'x' * 30}"
    assert registry.redact(line).endswith(MASK)


def test_longest_secret_is_masked_whole_and_short_values_are_ignored(registry: Secrets) -> None:
    registry.configure(["abcd", "abcdefgh", "ab"])
    assert registry.redact("abcdefgh ab") == f"{MASK} ab"


def test_tokens_fetched_through_the_cache_are_masked() -> None:
    async def fetch(_previous: Token | None) -> Token:
        return Token(SecretStr("fetched-access-token"), refresh_token=SecretStr("fetched-refresh"))

    asyncio.run(TokenCache().get("account", fetch))
    assert secrets.redact("fetched-access-token / fetched-refresh") == f"{MASK} / {MASK}"


def test_error_text_is_masked_in_every_value_written_to_the_store() -> None:
    secrets.learn("store-bound-secret")
    text = "HTTP 500: echo store-bound-secret"
    state = ConnectionState("o", "c", "poll", ConnectionStatus.FAILING, last_error=text)
    letter = DeadLetterIn("ingest", "o", "c", "E", text, payload="store-bound-secret")
    settled = OutboxSettlement(1, "dead", error=text)
    assert state.last_error == letter.error == settled.error == f"HTTP 500: echo {MASK}"
    assert letter.payload == "store-bound-secret"  # a payload is replayed verbatim


def test_log_lines_and_tracebacks_are_masked() -> None:
    secrets.learn("log-bound-secret")
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    logs.configure(fmt="json", stream=stream)
    try:
        log = structlog.get_logger("test")
        log.warning("poll.failing", error="echo log-bound-secret", problems=["log-bound-secret"])
        log.warning("poll.failing", error=RuntimeError("echo log-bound-secret"))
        try:
            raise RuntimeError("vendor quoted log-bound-secret")
        except RuntimeError:
            log.exception("loop.crashed")
        logging.getLogger("aiohttp.server").warning("stdlib log-bound-secret")
    finally:
        structlog.reset_defaults()
        root.handlers[:], root.level = handlers, level
    text = stream.getvalue()
    assert "log-bound-secret" not in text
    assert text.count(MASK) >= 5 and "RuntimeError" in text, text
