"""The only code that calls Xendit: `GET /v2/invoices` with HTTP Basic (secret key, empty
password), paged by `last_invoice_id` (VENDORS.md).

Xendit lists invoices newest first, at most 100 per request; the next page starts after the
last invoice id of the previous one. Its 429 (`RATE_LIMIT_EXCEEDED`) carries `Rate-Limit-Reset`,
which core's HTTP client turns into the wait before the retry; a 401 is an `AuthError`.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr
from sambung.plugin import KeysetPaginator, VendorHttp, decode, paginate

MAX_LIMIT = 100
# Where Xendit puts the account's callback verification token on every callback.
CALLBACK_HEADER = "x-callback-token"


def xendit_time(instant: datetime) -> str:
    """An instant as Xendit writes times: UTC ISO-8601 with milliseconds and `Z`."""
    return instant.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def basic_auth(secret_key: SecretStr) -> str:
    """HTTP Basic with the secret key as user name and an empty password, as Xendit wants."""
    pair = f"{secret_key.get_secret_value()}:".encode()
    return "Basic " + base64.b64encode(pair).decode()


class XenditClient:
    """Xendit's invoice list through core's HTTP client."""

    def __init__(
        self, http: VendorHttp, base_url: str, secret_key: SecretStr, *, limit: int = MAX_LIMIT
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.secret_key = secret_key
        self.limit = min(limit, MAX_LIMIT)

    async def invoices(
        self, created_after: datetime, statuses: Sequence[str]
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of invoices created after `created_after` in `statuses`, newest first."""

        async def fetch(last_id: str | None) -> list[dict[str, Any]]:
            params: list[tuple[str, str]] = [
                ("limit", str(self.limit)),
                ("created_after", xendit_time(created_after)),
                *(("statuses[]", status) for status in statuses),
            ]
            if last_id is not None:
                params.append(("last_invoice_id", last_id))
            response = await self.http.get(
                f"{self.base_url}/v2/invoices",
                params=params,
                headers={"Authorization": basic_auth(self.secret_key)},
            )
            # A bare JSON array of invoice objects; anything else (a proxy's page) is retried.
            return decode(response, list[dict[str, Any]], what="Xendit invoices")

        pages: KeysetPaginator[list[dict[str, Any]], dict[str, Any]] = KeysetPaginator(
            lambda rows: rows, lambda invoice: str(invoice.get("id") or ""), per_page=self.limit
        )
        async for rows in paginate(fetch, pages):
            yield rows
