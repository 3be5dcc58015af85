"""The Midtrans connector: HTTP notifications verified by their `signature_key`."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from multidict import CIMultiDict, CIMultiDictProxy
from sambung.connectors import (
    ConnectorContext,
    ConnectorSettings,
    Secrets,
    WebhookConnector,
    WebhookEvent,
    WebhookRequest,
)
from sambung.errors import InvalidPayload, SignatureError
from sambung.parse import loads

from .mapping import dedup_key, signature, to_payment, verify


class MidtransConnector(WebhookConnector):
    """Midtrans payments, pushed as HTTP notifications."""

    name = "midtrans"

    class Settings(ConnectorSettings):
        """An outlet's `midtrans` block in the YAML."""

        # The account's server key (a list while moving between accounts).
        server_key: Secrets

    def __init__(self, context: ConnectorContext) -> None:
        super().__init__(context)
        self._created: dict[int, datetime] = {}  # the demo's orders awaiting their second step

    def verify(self, request: WebhookRequest) -> None:
        """Accept only notifications whose `signature_key` matches (constant-time)."""
        try:
            body = request.payload
        except InvalidPayload as err:
            raise SignatureError("not JSON, so no signature_key") from err
        verify(body, self.settings.server_key)

    def parse(self, request: WebhookRequest) -> WebhookEvent:
        """A notification → its payment; the same status again is a duplicate."""
        payment = to_payment(request.payload, self.outlet)
        return WebhookEvent(
            event_type=f"payment.{request.payload.get('transaction_status')}",
            records=[payment],
            dedup_key=dedup_key(request.payload),
        )

    def signed(self, body: bytes) -> WebhookRequest | None:
        """`body` with its `signature_key` recomputed in place (every other byte kept); None
        when the body has no signable fields, or no `signature_key` spelled plainly once."""
        try:
            payload = loads(body)
        except InvalidPayload:
            return None
        if not isinstance(payload, dict):
            return None
        given = payload.get("signature_key")
        order_id, status_code, gross = (
            payload.get(k) for k in ("order_id", "status_code", "gross_amount")
        )
        if not all(isinstance(v, str) for v in (given, order_id, status_code, gross)):
            return None
        key = self.settings.server_key[0].get_secret_value()
        try:
            expected = signature(str(order_id), str(status_code), str(gross), key)
        except UnicodeEncodeError:  # text no Midtrans can sign (a lone surrogate)
            return None
        spelled = json.dumps(given).encode()
        if body.count(spelled) != 1:
            return None
        headers = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json"}))
        return WebhookRequest(
            body=body.replace(spelled, json.dumps(expected).encode()), headers=headers
        )

    def example_webhook(self, sequence: int) -> WebhookRequest | None:
        """A notification at the outlet's time now: pending, then settled; every fifth order's
        pending arrives after its settlement (stale), every seventh is refunded instead."""
        from . import fake  # only the demo and tests need it

        key = self.settings.server_key[0].get_secret_value()
        order, phase = divmod(sequence - 1, 2)
        now = self.context.clock.now()
        # An order's transaction_time is fixed at Midtrans: its second notification keeps it.
        created = self._created.pop(order, None) or now - timedelta(minutes=2)
        if phase == 0:
            self._created[order] = created
        status = "pending" if phase == 0 else "settlement"
        if order % 5 == 4:  # the settlement overtakes the pending: the late pending is stale
            status = "settlement" if phase == 0 else "pending"
        if phase == 1 and order % 7 == 6:
            status = "refund"
        body = fake.notification_bytes(order + 1, created, status, key, outlet=self.outlet.id)
        headers = CIMultiDict({"Content-Type": "application/json"})
        return WebhookRequest(body=body, headers=CIMultiDictProxy(headers))
