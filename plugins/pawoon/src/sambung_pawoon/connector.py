"""The Pawoon connector: verifies Pawoon's signed webhooks and hands the body to `mapping`."""

from __future__ import annotations

from collections.abc import Iterator

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


class PawoonConnector(HmacWebhookConnector, FileDropConnector):
    """Receives Pawoon webhooks: `transaction.created` and `inventory.updated`."""

    name = "pawoon"

    class Settings(HmacWebhookSettings, FileDropSettings):
        """An outlet's `pawoon` block in the YAML."""

        signature_header: str = "X-Webhook-Signature"

    def parse(self, request: WebhookRequest) -> WebhookEvent:
        """Map a verified body to records."""
        return to_event(request.payload, self.outlet)

    def example_body(self, sequence: int) -> bytes:
        """A generated Pawoon webhook at the outlet's local time now."""
        return fake.webhook_bytes(
            sequence, self.context.clock.now().astimezone(self.outlet.timezone)
        )

    amount_columns = csvexport.AMOUNT_COLUMNS

    def parse_file(self, stream: CsvStream) -> Iterator[Record | RowError]:
        """Map every row of a Pawoon CSV export (file-drop and upload)."""
        return csvexport.parse_file(stream, self.outlet)

    def example_file(self, sequence: int, *, bad_row: bool = False) -> bytes:
        """A generated Pawoon export at the outlet's local time now."""
        now = self.context.clock.now().astimezone(self.outlet.timezone)
        return fake.export_csv(sequence, now, bad_row=bad_row)
