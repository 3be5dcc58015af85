"""Access tokens fetched from vendors, cached per account until shortly before they expire.

However many loops need a token at the same moment, it is fetched (or refreshed) once: the
others wait for that one fetch. A 401 invalidates only the token that failed, so fifty loops
hitting 401 together cause one refresh, not fifty.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import SecretStr

from sambung.clock import Clock, SystemClock
from sambung.redaction import secrets

# Refresh this long before the vendor's expiry, so no request leaves with a dying token.
EARLY = timedelta(seconds=60)


@dataclass(frozen=True)
class Token:
    """A bearer token and when it stops working; `refresh_token` when the vendor gives one."""

    access_token: SecretStr
    expires_at: datetime | None = None
    refresh_token: SecretStr | None = None

    def values(self) -> tuple[str, ...]:
        """The secret strings it holds, for redaction."""
        refresh = self.refresh_token.get_secret_value() if self.refresh_token else None
        return tuple(v for v in (self.access_token.get_secret_value(), refresh) if v)

    def fresh(self, now: datetime) -> bool:
        """Whether it is still good for a request leaving now."""
        return self.expires_at is None or now < self.expires_at - EARLY


# Given the token held so far (None at first), fetch a new one (refreshing it when possible).
Fetch = Callable[[Token | None], Awaitable[Token]]


class TokenCache:
    """Tokens by account key, fetched once however many callers ask at once."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._tokens: dict[str, Token] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        # Per key: how many fetches ran, and the error of the last one if it failed, so callers
        # queued behind a failed fetch share its failure instead of each trying again.
        self._attempts: dict[str, int] = {}
        self._failed: dict[str, BaseException] = {}
        self.fetches = 0

    async def get(self, key: str, fetch: Fetch) -> Token:
        """The cached token of `key`, or a new one from `fetch` when missing or expiring."""
        token = self._tokens.get(key)
        if token is not None and token.fresh(self._clock.now()):
            return token
        lock = self._locks.setdefault(key, asyncio.Lock())
        attempts = self._attempts.get(key, 0)
        async with lock:
            token = self._tokens.get(key)  # someone else may have fetched it meanwhile
            if token is not None and token.fresh(self._clock.now()):
                return token
            failed = self._failed.get(key)
            if failed is not None and self._attempts.get(key, 0) != attempts:
                raise failed  # the fetch we waited for failed: one vendor call, not fifty
            self.fetches += 1
            self._attempts[key] = self._attempts.get(key, 0) + 1
            try:
                fresh = await fetch(token)
            except Exception as err:
                self._failed[key] = err
                raise
            self._failed.pop(key, None)
            # Before anyone uses it: a vendor's error may quote the token it was sent.
            secrets.learn(*fresh.values())
            self._tokens[key] = fresh
            return fresh

    def invalidate(self, key: str, token: Token | None = None) -> None:
        """Forget `key`'s token (only if it is still `token`, when given): it was refused."""
        current = self._tokens.get(key)
        if current is not None and (token is None or current is token):
            # Keep the refresh token: a refresh may still work where the access token did not.
            self._tokens[key] = Token(
                current.access_token,
                expires_at=self._clock.now(),
                refresh_token=current.refresh_token,
            )

    def forget(self, key: str) -> None:
        """Drop `key`'s token entirely (new credentials were stored): the next `get` fetches."""
        self._tokens.pop(key, None)
        self._failed.pop(key, None)

    def expires_in(self, seconds: float | int) -> datetime:
        """The expiry instant of a token the vendor says lasts `seconds` from now."""
        return self._clock.now() + timedelta(seconds=float(seconds))
