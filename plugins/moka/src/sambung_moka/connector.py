"""The Moka connector: verifies Moka's signed webhooks and hands the body to `mapping`."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field
from sambung.connectors import (
    FileDropConnector,
    FileDropSettings,
    HmacWebhookConnector,
    HmacWebhookSettings,
    WebhookEvent,
    WebhookRequest,
)
from sambung.csvfiles import CsvStream, RowError
from sambung.models import Record

from . import csvexport, fake
from .mapping import to_event


class MokaConnector(HmacWebhookConnector, FileDropConnector):
    """Receives Moka webhooks: transactions created, updated and refunded; item events."""

    name = "moka"

    class Settings(HmacWebhookSettings, FileDropSettings):
        """An outlet's `moka` block in the YAML."""

        # Moka does not document its signing: we assume hex HMAC-SHA256 of the body, under a
        # header name the merchant can change without a release.
        signature_header: str = "X-Moka-Signature"
        # Moka's own (numeric) outlet id; when set, events for any other outlet are refused.
        outlet_id: str | None = Field(default=None, coerce_numbers_to_str=True)

    def parse(self, request: WebhookRequest) -> WebhookEvent:
        """Map a verified body to records."""
        return to_event(request.payload, self.outlet, moka_outlet_id=self.settings.outlet_id)

    def example_body(self, sequence: int) -> bytes:
        """A generated Moka webhook envelope at the outlet's local time now."""
        now = self.context.clock.now().astimezone(self.outlet.timezone)
        return fake.webhook_bytes(sequence, now, self.settings.outlet_id or "41230")

    amount_columns = csvexport.AMOUNT_COLUMNS

    def parse_file(self, stream: CsvStream) -> Iterator[Record | RowError]:
        """Map every row of a Moka CSV export (file-drop and upload)."""
        return csvexport.parse_file(stream, self.outlet)

    def example_file(self, sequence: int, *, bad_row: bool = False) -> bytes:
        """A generated Moka export at the outlet's local time now."""
        now = self.context.clock.now().astimezone(self.outlet.timezone)
        return fake.export_csv(sequence, now, bad_row=bad_row)
