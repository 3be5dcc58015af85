"""The Olsera connector: polls closed orders, and each order's lines, with an app id and key."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from pydantic import Field, HttpUrl, SecretStr
from sambung.plugin import InvalidRecord, Page, PollConnector, PollSettings, PollWindow, page_of

from .client import OlseraClient
from .mapping import is_sale, order_instant, to_records


class OlseraSettings(PollSettings):
    """An outlet's `olsera` block in the YAML."""

    app_id: str
    secret_key: SecretStr
    base_url: HttpUrl = HttpUrl("https://api-open.olsera.co.id")
    # Order details fetched at once (each under the account's rate budget).
    detail_concurrency: int = Field(4, ge=1, le=16)


class OlseraConnector(PollConnector[OlseraSettings]):
    """Polls Olsera's closed orders."""

    name = "olsera"
    rate_limit = 5.0
    max_in_flight = 2

    def account(self) -> str:
        """Outlets polled with one app id share its budget."""
        return f"olsera:{self.settings.app_id}"

    @property
    def client(self) -> OlseraClient:
        """Olsera's open API through core's HTTP client."""
        return OlseraClient(
            self.http,
            str(self.settings.base_url),
            self.settings.app_id,
            self.settings.secret_key,
            self.outlet.timezone,
        )

    async def poll(self, window: PollWindow) -> AsyncIterator[Page]:
        """Pages of closed orders with their lines; the list is not in change order, so the
        cursor moves only with the last page (to the newest order seen in the whole run).

        A detail that fails raises, so the run ends before that page is committed and the
        cursor has not moved: the order is fetched again, never stored without its lines.
        """
        newest: datetime | None = None
        client = self.client
        gate = asyncio.Semaphore(self.settings.detail_concurrency)

        async def lines(row: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
            if not is_sale(row) or row.get("id") is None:
                return row, []
            async with gate:
                return row, await client.order_items(str(row["id"]))

        async for rows in client.closed_orders(window.since, window.until):
            for row in rows:
                seen = self._ordered_at(row)
                if seen is not None and (newest is None or seen > newest):
                    newest = seen
            with_lines = await asyncio.gather(*(lines(row) for row in rows))
            yield page_of(with_lines, self._map, None)
        if newest is not None:
            yield Page(records=[], cursor=newest)

    async def reauthenticate(self) -> None:
        """Forget the cached token; the next request fetches a new one."""
        self.client.forget_token()

    def _map(self, pair: tuple[dict[str, Any], list[Any]]) -> Any:
        return to_records(pair[0], pair[1], self.outlet)

    def _ordered_at(self, row: dict[str, Any]) -> datetime | None:
        try:
            return order_instant(row, self.outlet)
        except InvalidRecord:
            return None
