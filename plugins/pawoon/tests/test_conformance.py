"""The test kit's standard checks, run against the Pawoon connector."""

from __future__ import annotations

from typing import Any, ClassVar

from sambung.testing.conformance import (
    FileDropConnectorConformance,
    HmacWebhookConnectorConformance,
)
from sambung_pawoon.connector import PawoonConnector


class TestPawoonConformance(HmacWebhookConnectorConformance):
    connector = PawoonConnector
    settings: ClassVar[dict[str, Any]] = {"mode": "webhook", "webhook_secret": "conformance-secret"}


class TestPawoonFileDropConformance(FileDropConnectorConformance):
    connector = PawoonConnector
    settings: ClassVar[dict[str, Any]] = {"mode": "file-drop"}
