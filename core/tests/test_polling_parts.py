"""The pure parts of poll mode: Retry-After, durations, the token cache, per-mode settings."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from pydantic import SecretStr, ValidationError
from sambung.auth.tokens import Token, TokenCache
from sambung.connectors import PollSettings
from sambung.http import retry_after
from sambung.testing.fake_vendor import FakeClock

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"Retry-After": " 2.5 "}, 2.5),
        ({"Retry-After": format_datetime(NOW + timedelta(seconds=90), usegmt=True)}, 90.0),
        ({"Retry-After": format_datetime(NOW - timedelta(seconds=90), usegmt=True)}, 0.0),
        ({"Rate-Limit-Reset": "12"}, 12.0),
        ({"Rate-Limit-Reset": str(int(NOW.timestamp()) + 40)}, 40.0),
        ({"Retry-After": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after(headers, NOW) == seconds


@pytest.mark.parametrize(
    ("value", "expected"),
    [("5m", 300), ("15s", 15), ("1h", 3600), (90, 90), ("2.5m", 150), ("1d", 86400)],
)
def test_interval_durations(value: object, expected: float) -> None:
    settings = PollSettings.model_validate({"mode": "poll", "interval": value})
    assert settings.interval.total_seconds() == expected


@pytest.mark.parametrize("value", ["10s", "soon", "5 minutes"])
def test_interval_must_be_a_duration_of_at_least_15s(value: str) -> None:
    with pytest.raises(ValidationError, match="interval"):
        PollSettings.model_validate({"mode": "poll", "interval": value})


def test_default_interval_is_five_minutes() -> None:
    assert PollSettings.model_validate({"mode": "poll"}).interval == timedelta(minutes=5)


async def test_a_token_is_fetched_once_for_many_callers_and_refreshed_before_expiry() -> None:
    clock = FakeClock(NOW)
    cache = TokenCache(clock)
    fetched: list[Token | None] = []

    async def fetch(previous: Token | None) -> Token:
        fetched.append(previous)
        await asyncio.sleep(0.01)
        return Token(SecretStr(f"t{len(fetched)}"), cache.expires_in(3600))

    tokens = await asyncio.gather(*(cache.get("acct", fetch) for _ in range(30)))
    assert {t.access_token.get_secret_value() for t in tokens} == {"t1"}

    clock.advance(3600 - 30)  # inside the early-refresh margin
    assert (await cache.get("acct", fetch)).access_token.get_secret_value() == "t2"
    assert fetched[1] is tokens[0], "the refresh sees the old token (and its refresh token)"


async def test_a_refused_token_is_invalidated_once() -> None:
    cache = TokenCache(FakeClock(NOW))
    count = 0

    async def fetch(_previous: Token | None) -> Token:
        nonlocal count
        count += 1
        return Token(SecretStr(f"t{count}"), cache.expires_in(3600))

    old = await cache.get("acct", fetch)
    cache.invalidate("acct", old)
    new = await cache.get("acct", fetch)
    cache.invalidate("acct", old)  # a late 401 for the old token leaves the new one alone
    assert await cache.get("acct", fetch) is new
    assert count == 2
