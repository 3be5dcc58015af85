"""The test kit's standard checks, run against the Midtrans connector and its fake."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from sambung.plugin import Outlet, WebhookRequest
from sambung.testing.conformance import PollConnectorConformance, WebhookConnectorConformance
from sambung.testing.core import IngestRequest, Store
from sambung.testing.fake_vendor import FakeClock
from sambung_midtrans import MidtransConnector
from sambung_midtrans.fake import MidtransFake
from sambung_midtrans.mapping import to_payment

KEY = "SB-Mid-server-conf"


class TestMidtransConformance(WebhookConnectorConformance):
    connector = MidtransConnector
    settings: ClassVar[dict[str, Any]] = {"mode": "webhook", "server_key": KEY}
    # The signature covers order_id, status_code, gross_amount and the key, not the raw bytes.
    signs_body = False

    def unsigned(self, request: WebhookRequest) -> WebhookRequest:
        body = {k: v for k, v in json.loads(request.body).items() if k != "signature_key"}
        return WebhookRequest(body=json.dumps(body).encode(), headers=request.headers)


class TestMidtransPollConformance(PollConnectorConformance):
    connector = MidtransConnector

    def fake(self, clock: FakeClock) -> MidtransFake:
        return MidtransFake(server_key=KEY, clock=clock, outlet="conformance")

    def settings(self, url: str) -> dict[str, Any]:
        return {"mode": ["webhook", "poll"], "server_key": KEY, "base_url": url}

    async def prepare(self, store: Store, vendor: Any, at: Outlet) -> None:
        # Midtrans has no list API: the poll asks about the payments the store has as pending.
        pending = [
            to_payment({**body, "transaction_status": "pending"}, at)
            for body in vendor.orders.values()
        ]
        await store.ingest(IngestRequest(records=pending, routes=[()] * len(pending)))
