"""The Moka connector: verifies Moka's signed webhooks and hands the body to `mapping`."""

from __future__ import annotations

from pydantic import Field
from sambung.connectors import (
    HmacWebhookConnector,
    HmacWebhookSettings,
    WebhookEvent,
    WebhookRequest,
)

from . import fake
from .mapping import to_event


class MokaConnector(HmacWebhookConnector):
    """Receives Moka webhooks: transactions created, updated and refunded; item events."""

    name = "moka"

    class Settings(HmacWebhookSettings):
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
