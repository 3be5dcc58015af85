"""sambung connector for Moka (POS): signed webhooks for sales, updates and refunds."""

from __future__ import annotations

from sambung.plugin import RegisterConnector, hookimpl

from .connector import MokaConnector

__all__ = ["MokaConnector"]


@hookimpl
def sambung_register_connectors(register: RegisterConnector) -> None:
    """Register the Moka connector."""
    register(MokaConnector)
