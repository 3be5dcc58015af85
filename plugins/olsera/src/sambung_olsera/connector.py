"""The Olsera connector: polls closed orders with an app id and secret key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Literal

from pydantic import HttpUrl, SecretStr
from sambung.connectors import Page, PollConnector, PollSettings, PollWindow, page_of
from sambung.errors import InvalidRecord
from sambung.parse import timestamp

from .client import OlseraClient
from .mapping import UTC_ZONE, to_records


class OlseraConnector(PollConnector):
    """Polls Olsera's closed orders."""

    name = "olsera"
    rate_limit = 5.0
    max_in_flight = 2

    class Settings(PollSettings):
        """An outlet's `olsera` block in the YAML."""

        app_id: str
        secret_key: SecretStr
        base_url: HttpUrl = HttpUrl("https://api-open.olsera.co.id")
        # Which zone Olsera's zone-less `created_time` is in: UTC (what integrations report)
        # or the outlet's own.
        naive_times: Literal["utc", "outlet"] = "utc"

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
        """Pages of closed orders; the list is not in change order, so the cursor moves only
        with the last page (to the newest change seen in the whole run)."""
        newest: datetime | None = None
        async for rows in self.client.closed_orders(window.since, window.until):
            for row in rows:
                seen = self._changed_at(row)
                if seen is not None and (newest is None or seen > newest):
                    newest = seen
            yield page_of(rows, self._map, None)
        if newest is not None:
            yield Page(records=[], cursor=newest)

    async def reauthenticate(self) -> None:
        """Forget the cached token; the next request fetches a new one."""
        self.client.forget_token()

    def _map(self, row: Any) -> Any:
        return to_records(row, self.outlet, naive_times=self.settings.naive_times)

    def _changed_at(self, row: dict[str, Any]) -> datetime | None:
        zone = UTC_ZONE if self.settings.naive_times == "utc" else self.outlet.timezone
        try:
            return timestamp(row.get("updated_time") or row.get("created_time"), zone, "time")
        except InvalidRecord:
            return None
