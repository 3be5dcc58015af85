"""The Pawoon connector: verifies Pawoon's signed webhooks and hands the body to `mapping`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar

from pydantic import Field, HttpUrl, SecretStr
from sambung.plugin import (
    CsvStream,
    FileDropConnector,
    FileDropSettings,
    HmacWebhookConnector,
    HmacWebhookSettings,
    Mode,
    Page,
    PollConnector,
    PollSettings,
    PollWindow,
    Record,
    RowError,
    Secrets,
    WebhookEvent,
    WebhookRequest,
    configured,
    page_of,
)

from . import csvexport
from .client import PawoonClient
from .mapping import to_event, to_polled_transaction


class PawoonSettings(HmacWebhookSettings, PollSettings, FileDropSettings):
    """An outlet's `pawoon` block in the YAML."""

    signature_header: str = "X-Webhook-Signature"
    # Poll mode (webhook_secret is needed only in webhook mode, the client only in poll).
    webhook_secret: Secrets | None = None  # type: ignore[assignment]
    client_id: str | None = None
    client_secret: SecretStr | None = None
    base_url: HttpUrl = HttpUrl("https://open-api.pawoon.com")
    # Pawoon's own outlet id, to poll one outlet of a multi-outlet account.
    pawoon_outlet_id: str | None = Field(default=None, coerce_numbers_to_str=True)
    per_page: int = Field(100, ge=1, le=100)

    required_in_mode: ClassVar[dict[Mode, tuple[str, ...]]] = {
        Mode.WEBHOOK: ("webhook_secret",),
        Mode.POLL: ("client_id", "client_secret"),
    }


class PawoonConnector(
    HmacWebhookConnector[PawoonSettings],
    PollConnector[PawoonSettings],
    FileDropConnector[PawoonSettings],
):
    """Receives Pawoon webhooks: `transaction.created` and `inventory.updated`."""

    name = "pawoon"

    def parse(self, request: WebhookRequest) -> WebhookEvent:
        """Map a verified body to records."""
        return to_event(request.payload, self.outlet)

    def example_body(self, sequence: int) -> bytes:
        """A generated Pawoon webhook at the outlet's local time now."""
        from . import fake  # only the demo and tests need it

        return fake.webhook_bytes(
            sequence, self.context.clock.now().astimezone(self.outlet.timezone)
        )

    amount_columns = csvexport.AMOUNT_COLUMNS

    def parse_file(self, stream: CsvStream) -> Iterator[Record | RowError]:
        """Map every row of a Pawoon CSV export (file-drop and upload)."""
        return csvexport.parse_file(stream, self.outlet)

    def example_file(self, sequence: int, *, bad_row: bool = False) -> bytes:
        """A generated Pawoon export at the outlet's local time now."""
        from . import fake  # only the demo and tests need it

        now = self.context.clock.now().astimezone(self.outlet.timezone)
        return fake.export_csv(sequence, now, bad_row=bad_row)

    # -- poll mode -------------------------------------------------------------------------

    def account(self) -> str:
        """Outlets polled with one Pawoon client id share its budget."""
        return f"pawoon:{self.settings.client_id}"

    @property
    def client(self) -> PawoonClient:
        """Pawoon's open API through core's HTTP client."""
        return PawoonClient(
            self.http,
            str(self.settings.base_url),
            configured(self.settings.client_id, "client_id"),
            configured(self.settings.client_secret, "client_secret"),
            pawoon_outlet_id=self.settings.pawoon_outlet_id,
            per_page=self.settings.per_page,
            tz=self.outlet.timezone,
        )

    async def poll(self, window: PollWindow) -> AsyncIterator[Page]:
        """Pages of sales rung up in the window, oldest first; the cursor is the device time."""
        async for rows in self.client.transactions(window.since, window.until):
            yield page_of(rows, self._map_polled, _newest(rows, self.outlet.timezone))

    async def reauthenticate(self) -> None:
        """Forget the cached token; the next request fetches a new one."""
        self.client.forget_token()

    def _map_polled(self, row: Any) -> Any:
        return to_polled_transaction(row, self.outlet)


def _newest(rows: list[dict[str, Any]], tz: Any) -> Any:
    from sambung.plugin import InvalidRecord, timestamp

    times = []
    for row in rows:
        try:
            times.append(timestamp(row.get("device_timestamp"), tz, "device_timestamp"))
        except InvalidRecord:
            continue
    return max(times) if times else None
