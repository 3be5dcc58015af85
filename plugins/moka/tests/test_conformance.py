"""The test kit's standard checks, run against the Moka connector."""

from __future__ import annotations

from typing import Any, ClassVar

from sambung.testing.conformance import (
    FileDropConnectorConformance,
    HmacWebhookConnectorConformance,
)
from sambung_moka.connector import MokaConnector


class TestMokaConformance(HmacWebhookConnectorConformance):
    connector = MokaConnector
    settings: ClassVar[dict[str, Any]] = {
        "mode": "webhook",
        "webhook_secret": "conformance-secret",
        "outlet_id": 41230,
    }


class TestMokaFileDropConformance(FileDropConnectorConformance):
    connector = MokaConnector
    settings: ClassVar[dict[str, Any]] = {"mode": "file-drop"}
