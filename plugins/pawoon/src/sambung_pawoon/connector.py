"""The Pawoon connector: verifies Pawoon's signed webhooks and hands the body to `mapping`."""

from __future__ import annotations

from sambung.connectors import (
    HmacWebhookConnector,
    HmacWebhookSettings,
    WebhookEvent,
    WebhookRequest,
)

from . import fake
from .mapping import to_event


class PawoonConnector(HmacWebhookConnector):
    """Receives Pawoon webhooks: `transaction.created` and `inventory.updated`."""

    name = "pawoon"

    class Settings(HmacWebhookSettings):
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
