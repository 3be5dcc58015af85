"""Talking to vendors: one shared aiohttp session, the account's rate budget, a timeout, and
every HTTP failure translated into core's error classes at this one boundary.

Connectors call `VendorHttp.request` (through their `client.py`); they never create sessions.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

from .auth.tokens import Fetch, TokenCache
from .clock import Clock, SystemClock
from .errors import AuthError, RequestRejected, RetriableError
from .parse import loads
from .ratelimit import Budget
from .redaction import secrets, shorten

# Statuses worth retrying: the vendor is busy, down or asked us to slow down.
RETRIABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
# Epoch seconds are above this; smaller Rate-Limit-Reset values are seconds from now.
_EPOCH_THRESHOLD = 1_000_000_000


def retry_after(headers: Mapping[str, str], now: datetime) -> float | None:
    """Seconds to wait per `Retry-After` (seconds or HTTP date) or Xendit's `Rate-Limit-Reset`."""
    value = headers.get("Retry-After")
    if value is not None:
        text = value.strip()
        try:
            return max(0.0, float(text))
        except ValueError:
            pass
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        return max(0.0, (when - now).total_seconds()) if when.tzinfo else None
    reset = headers.get("Rate-Limit-Reset")
    if reset is not None:
        try:
            seconds = float(reset.strip())
        except ValueError:
            return None
        if seconds > _EPOCH_THRESHOLD:
            seconds -= now.timestamp()
        return max(0.0, seconds)
    return None


def backoff(attempt: int, *, base: float = 1.0, cap: float = 60.0) -> float:
    """Full-jitter exponential delay before retry number `attempt` (1, 2, ...)."""
    return random.uniform(0, min(cap, base * 2 ** (attempt - 1)))


@dataclass(frozen=True)
class VendorResponse:
    """A vendor's answer, read whole: status, headers and body."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON with exact Decimals."""
        return loads(self.body)


class VendorHttp:
    """HTTP for one connection: the shared session, its account's budget and its timeout."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        budget: Budget | None = None,
        timeout: float = 30.0,
        clock: Clock | None = None,
        tokens: TokenCache | None = None,
        fence: Callable[[], None] | None = None,
    ) -> None:
        self.session = session
        # Called as each request leaves, after any wait for the budget: raises when this process
        # may no longer act for the connection (a poll lease that may have passed on while the
        # process was frozen or starved), so a stale holder never sends once the lease is gone.
        self.fence = fence
        # Shared by every connection of the daemon, keyed by account.
        self.tokens = tokens or TokenCache(clock)
        self.budget = budget
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.clock = clock or SystemClock()

    async def request(self, method: str, url: str, **kwargs: Any) -> VendorResponse:
        """Send one request within the budget; return a 2xx answer or raise a core error.

        Timeouts, connection errors, 408/429/5xx → `RetriableError` (with `retry_after` when the
        vendor says); 401 → `AuthError`; any other 4xx → `RequestRejected` with the message.
        """
        if self.budget is not None:
            async with self.budget.call():
                response = await self._send(method, url, **kwargs)
        else:
            response = await self._send(method, url, **kwargs)
        return self.check(response)

    async def send(self, method: str, url: str, **kwargs: Any) -> VendorResponse:
        """Send one request within the budget and return the answer whatever its status, for
        callers that read a vendor's error body (an OAuth token endpoint, a 409 that means
        success); transport failures still raise."""
        if self.budget is not None:
            async with self.budget.call():
                return await self._send(method, url, **kwargs)
        return await self._send(method, url, **kwargs)

    async def get(self, url: str, **kwargs: Any) -> VendorResponse:
        """`request("GET", ...)`."""
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> VendorResponse:
        """`request("POST", ...)`."""
        return await self.request("POST", url, **kwargs)

    async def _send(self, method: str, url: str, **kwargs: Any) -> VendorResponse:
        if self.fence is not None:
            self.fence()
        kwargs.setdefault("timeout", self.timeout)
        # Whatever authenticates this request is a secret a vendor's error may quote back.
        authorization = CIMultiDict(kwargs.get("headers") or {}).get("Authorization")
        secrets.learn_authorization(authorization)
        auth = kwargs.get("auth")
        if isinstance(auth, aiohttp.BasicAuth):
            secrets.learn_authorization(auth.encode())
        try:
            async with self.session.request(method, url, **kwargs) as answer:
                body = await answer.read()
                return VendorResponse(answer.status, answer.headers, body)
        except TimeoutError as err:
            raise RetriableError(f"{method} {_path(url)} timed out") from err
        except asyncio.CancelledError:
            raise
        except aiohttp.ClientError as err:
            raise RetriableError(f"{method} {_path(url)} failed: {err}") from err

    def check(self, response: VendorResponse) -> VendorResponse:
        """`response` if it is a success; otherwise the core error for its status."""
        status = response.status
        if status < 400:
            return response
        message = f"HTTP {status}: {vendor_message(response.body)}"
        if status in RETRIABLE_STATUSES:
            raise RetriableError(
                message, retry_after=retry_after(response.headers, self.clock.now())
            )
        if status == 401:
            raise AuthError(message)
        raise RequestRejected(message, status=status)


def _path(url: str) -> str:
    # Never the query: vendors put keys in it.
    return url.split("?", 1)[0]


def vendor_message(body: bytes) -> str:
    """The vendor's own words, short: `message`/`error` of a JSON body, else the text."""
    try:
        payload = loads(body)
    except Exception:
        # Bounded before decoding (a body may be megabytes), generously: the cut comes after
        # redaction, so no secret's head is left at the edge.
        return shorten(body[:4096].decode(errors="replace").strip(), 200) or "(empty body)"
    if isinstance(payload, dict):
        for key in ("message", "error_description", "error", "errors", "detail"):
            if payload.get(key):
                return shorten(str(payload[key]), 200)
    return shorten(str(payload), 200)


async def with_token(
    http: VendorHttp,
    key: str,
    fetch: Fetch,
    method: str,
    url: str,
    **kwargs: Any,
) -> VendorResponse:
    """A request with the account's cached bearer token; on 401, one fresh token and one retry.

    A token that expires in the middle of a run (or that the vendor revoked early) costs one
    refresh, shared with every loop of the account; a second 401 is a real `AuthError`.
    """
    for attempt in (1, 2):
        token = await http.tokens.get(key, fetch)
        headers = {
            **kwargs.pop("headers", {}),
            "Authorization": f"Bearer {token.access_token.get_secret_value()}",
        }
        try:
            return await http.request(method, url, headers=headers, **kwargs)
        except AuthError:
            if attempt == 2:
                raise
            http.tokens.invalidate(key, token)
            kwargs["headers"] = {k: v for k, v in headers.items() if k != "Authorization"}
    raise AssertionError("unreachable")
