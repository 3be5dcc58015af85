"""sambung connector for Moka (POS): signed webhooks for sales, updates and refunds."""

from __future__ import annotations

from collections.abc import Callable

from sambung.plugin import Connector, hookimpl

from .connector import MokaConnector

__all__ = ["MokaConnector"]


@hookimpl
def sambung_register_connectors(register: Callable[[type[Connector]], None]) -> None:
    """Register the Moka connector."""
    register(MokaConnector)
