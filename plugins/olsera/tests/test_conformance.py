"""The test kit's standard poll checks, run against the Olsera connector and its fake."""

from __future__ import annotations

from typing import Any

from sambung.testing.conformance import PollConnectorConformance
from sambung.testing.fake_vendor import FakeClock
from sambung_olsera import OlseraConnector
from sambung_olsera.fake import OlseraFake


class TestOlseraConformance(PollConnectorConformance):
    connector = OlseraConnector

    def fake(self, clock: FakeClock) -> OlseraFake:
        # Pages of 20, so the 75 seeded orders take several pages and `meta.last_page`.
        return OlseraFake(timezone=self.timezone, clock=clock, page_size=20)

    def settings(self, url: str) -> dict[str, Any]:
        return {
            "mode": "poll",
            "app_id": "olsera-app",
            "secret_key": "olsera-secret",
            "base_url": url,
        }
