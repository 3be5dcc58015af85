"""The test kit's standard checks, run against the Xendit connector and its fake."""

from __future__ import annotations

from typing import Any, ClassVar

from sambung.testing.conformance import PollConnectorConformance, WebhookConnectorConformance
from sambung.testing.fake_vendor import FakeClock
from sambung_xendit import XenditConnector
from sambung_xendit.fake import XenditFake


class TestXenditWebhookConformance(WebhookConnectorConformance):
    connector = XenditConnector
    settings: ClassVar[dict[str, Any]] = {
        "mode": "webhook",
        "callback_token": "conformance-callback-token",
    }
    signs_body = False  # Xendit sends a shared token, not a signature of the body


class TestXenditPollConformance(PollConnectorConformance):
    connector = XenditConnector

    def fake(self, clock: FakeClock) -> XenditFake:
        return XenditFake(secret_key="xnd_development_conformance", clock=clock)

    def settings(self, url: str) -> dict[str, Any]:
        return {
            "mode": "poll",
            "secret_key": "xnd_development_conformance",
            "base_url": url,
            "per_page": 20,
        }
