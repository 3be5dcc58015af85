"""The plugin is found through its entry point."""

from __future__ import annotations

from sambung.testing.core import load_plugins
from sambung_midtrans import MidtransConnector


def test_registered_under_its_name() -> None:
    registry = load_plugins()
    assert registry.connectors.get("midtrans") is MidtransConnector, registry.failures
