"""The Qasir connector: polls transactions changed since the cursor, with a bearer API key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pydantic import Field, HttpUrl, SecretStr
from sambung.plugin import Page, PollConnector, PollSettings, PollWindow, page_of

from .client import QasirClient
from .mapping import to_transaction


class QasirSettings(PollSettings):
    """An outlet's `qasir` block in the YAML."""

    api_key: SecretStr
    base_url: HttpUrl = HttpUrl("https://api.qasir.id/v1")
    per_page: int = Field(100, ge=1, le=1000)


class QasirConnector(PollConnector[QasirSettings]):
    """Polls Qasir sales (`GET /transactions?from_date=`)."""

    name = "qasir"
    # Qasir publishes no limits: a polite default; 429s are honoured either way.
    rate_limit = 5.0
    max_in_flight = 4

    @property
    def client(self) -> QasirClient:
        """The Qasir API through core's HTTP client."""
        return QasirClient(
            self.http,
            str(self.settings.base_url),
            self.settings.api_key,
            per_page=self.settings.per_page,
            tz=self.outlet.timezone,
        )

    async def poll(self, window: PollWindow) -> AsyncIterator[Page]:
        """Pages of transactions changed since the window's start, oldest first."""
        client = self.client
        async for rows in client.transactions(window.since):
            yield page_of(rows, self._map, client.newest(rows))

    def _map(self, row: Any) -> Any:
        return to_transaction(row, self.outlet)

    def example_vendor(self) -> Any:
        """The fake Qasir API, accepting this connection's key (for the simulator)."""
        from .fake import QasirFake

        return QasirFake(
            api_key=self.settings.api_key.get_secret_value(),
            timezone=str(self.outlet.timezone),
        )
