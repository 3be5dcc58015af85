"""The test kit's standard checks, run against the Midtrans connector."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from sambung.connectors import WebhookRequest
from sambung.testing.conformance import WebhookConnectorConformance
from sambung_midtrans import MidtransConnector


class TestMidtransConformance(WebhookConnectorConformance):
    connector = MidtransConnector
    settings: ClassVar[dict[str, Any]] = {"mode": "webhook", "server_key": "SB-Mid-server-conf"}
    # The signature covers order_id, status_code, gross_amount and the key, not the raw bytes.
    signs_body = False

    def unsigned(self, request: WebhookRequest) -> WebhookRequest:
        body = {k: v for k, v in json.loads(request.body).items() if k != "signature_key"}
        return WebhookRequest(body=json.dumps(body).encode(), headers=request.headers)
