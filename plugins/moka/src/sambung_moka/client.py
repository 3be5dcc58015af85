"""The only code that polls Moka: `get_latest_transactions` by `updated_at`, following
`next_url` until `completed` (VENDORS.md), with the connection's stored OAuth tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sambung.plugin import (
    Credentials,
    NextUrlPaginator,
    VendorHttp,
    decode,
    paginate,
    with_token,
)


class LatestTransactions(BaseModel):
    """The `data` of one answer of `get_latest_transactions`."""

    model_config = ConfigDict(extra="ignore")

    payments: list[dict[str, Any]]
    completed: bool = True
    next_url: str | None = None


class Answer(BaseModel):
    """The envelope Moka answers in."""

    model_config = ConfigDict(extra="ignore")

    data: LatestTransactions


class MokaClient:
    """Moka's reports API through core's HTTP client and the connection's stored credentials.

    Tokens come from `context.credentials` (core refreshes them, once for every caller, and
    stores a rotated refresh token before using the new access token).
    """

    def __init__(
        self,
        http: VendorHttp,
        base_url: str,
        moka_outlet_id: str,
        *,
        credentials: Credentials,
        per_page: int,
        time_format: str = "epoch",
        tz: Any = None,
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.moka_outlet_id = moka_outlet_id
        self.credentials = credentials
        self.per_page = per_page
        self.time_format = time_format
        self.tz = tz

    def _bound(self, instant: datetime) -> str:
        """`since`/`until` as the setting says: epoch seconds, or the outlet's `DD/MM/YYYY`."""
        if self.time_format == "epoch":
            return str(int(instant.timestamp()))
        return instant.astimezone(self.tz).strftime("%d/%m/%Y")

    async def payments(
        self, since: datetime, until: datetime
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of payments updated in [since, until], oldest first."""
        first = f"{self.base_url}/v3/outlets/{self.moka_outlet_id}/reports/get_latest_transactions"
        params = {
            "per_page": str(self.per_page),
            "since": self._bound(since),
            "until": self._bound(until),
            "time_filter": "updated_at",
            "reorder_type": "ASC",
        }

        async def fetch(next_url: str | None) -> LatestTransactions:
            # The first page is asked with our query; Moka's next_url carries its own.
            url, query = (first, params) if next_url is None else (next_url, None)
            response = await with_token(
                self.http, self.credentials.key, self.credentials.fetch, "GET", url, params=query
            )
            return decode(response, Answer, what="Moka latest transactions").data

        pages: NextUrlPaginator[LatestTransactions, dict[str, Any]] = NextUrlPaginator(
            lambda data: data.payments,
            next_url=lambda data: None if data.completed else data.next_url,
        )
        async for rows in paginate(fetch, pages):
            yield rows
