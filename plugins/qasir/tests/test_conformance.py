"""The test kit's standard poll checks, run against the Qasir connector and its fake."""

from __future__ import annotations

from typing import Any

from sambung.testing.conformance import PollConnectorConformance
from sambung.testing.fake_vendor import FakeClock
from sambung_qasir import QasirConnector
from sambung_qasir.fake import QasirFake


class TestQasirConformance(PollConnectorConformance):
    connector = QasirConnector

    def fake(self, clock: FakeClock) -> QasirFake:
        return QasirFake(api_key="conformance-key", timezone=self.timezone, clock=clock)

    def settings(self, url: str) -> dict[str, Any]:
        return {"mode": "poll", "api_key": "conformance-key", "base_url": f"{url}/v1"}
