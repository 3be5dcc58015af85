"""The `http` sink: POST each record as JSON, signed per the Standard Webhooks spec."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aiohttp
from pydantic import BaseModel, Field, HttpUrl, SecretStr, field_validator

from sambung.errors import DeliveryRejected, RetriableError, SinkGone
from sambung.redaction import shorten

from . import Delivered, Delivery, DeliveryResult, Sink, SinkSettings

SECRET_PREFIX = "whsec_"
# Answers that mean "not now" rather than "never": the spec's and every big sender's list.
RETRIABLE_STATUSES = frozenset({408, 429})
# How much of a refusing receiver's body to keep in the dead letter.
MAX_ERROR_BODY = 2000


def secret_key(secret: str) -> bytes:
    """The HMAC key inside a `whsec_…` secret (base64 after the prefix)."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: `v1,` and base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`."""
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def check_whsec(value: SecretStr) -> SecretStr:
    """`value` if it is a usable Standard Webhooks secret (`whsec_` and 24+ bytes of base64)."""
    text = value.get_secret_value()
    if not text.startswith(SECRET_PREFIX):
        raise ValueError("must be a Standard Webhooks secret: whsec_ and base64")
    try:
        key = secret_key(text)
    except ValueError:
        raise ValueError("must be whsec_ followed by base64") from None
    if len(key) < 24:
        raise ValueError("must hold at least 24 random bytes")
    return value


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a `Retry-After` header (seconds or an HTTP date); None if unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


class SignedTarget(BaseModel):
    """Where to POST and the shared `whsec_` secret the receiver verifies with (the `http`
    sink's settings, and the alerts' `webhook` channel's)."""

    url: HttpUrl
    secret: SecretStr
    timeout_seconds: float = Field(10.0, gt=0, le=300)
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("secret")
    @classmethod
    def _whsec(cls, value: SecretStr) -> SecretStr:
        return check_whsec(value)


class HttpSettings(SinkSettings, SignedTarget):
    """Where to POST and the shared `whsec_` secret the receiver verifies with."""


class HttpSink(Sink[HttpSettings]):
    """POSTs `Delivery.body()` to a URL with `webhook-id`, `webhook-timestamp` and signature."""

    name = "http"

    async def open(self) -> None:
        """Decode the secret once."""
        self._key = secret_key(self.settings.secret.get_secret_value())
        self._url = str(self.settings.url)
        self._timeout = aiohttp.ClientTimeout(total=self.settings.timeout_seconds)
        self._headers = {**self.settings.headers, "content-type": "application/json"}

    async def deliver(self, batch: Sequence[Delivery]) -> list[DeliveryResult]:
        """One POST per item."""
        return [await self._post(item) for item in batch]

    async def _post(self, item: Delivery) -> DeliveryResult:
        body = item.body()
        now = self.context.clock.now()
        timestamp = int(now.timestamp())
        headers = self._headers.copy()
        headers["webhook-id"] = item.id
        headers["webhook-timestamp"] = str(timestamp)
        headers["webhook-signature"] = sign(self._key, item.id, timestamp, body)
        try:
            async with self.context.session.post(
                self._url, data=body, headers=headers, timeout=self._timeout
            ) as answer:
                text = shorten(await answer.text(errors="replace"), MAX_ERROR_BODY)
                if 200 <= answer.status < 300:
                    return Delivered(answer.status, text)
                retry_after = parse_retry_after(answer.headers.get("Retry-After"), now)
        except (TimeoutError, aiohttp.ClientError) as err:
            return RetriableError(f"{type(err).__name__}: {err}".rstrip(": "))
        status = answer.status
        if status == 410:
            return SinkGone(f"HTTP 410 from {self._url}: the receiver asked to stop")
        if status in RETRIABLE_STATUSES or status >= 500 or status < 400:
            return RetriableError(
                f"HTTP {status}: {text}", retry_after=retry_after, status=status, body=text
            )
        return DeliveryRejected(f"HTTP {status}: {text}", status=status, body=text)
