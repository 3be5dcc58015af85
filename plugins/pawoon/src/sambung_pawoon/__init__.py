"""sambung connector for Pawoon (POS): signed webhooks for sales and stock levels."""

from __future__ import annotations

from sambung.plugin import RegisterConnector, hookimpl

from .connector import PawoonConnector

__all__ = ["PawoonConnector"]


@hookimpl
def sambung_register_connectors(register: RegisterConnector) -> None:
    """Register the Pawoon connector."""
    register(PawoonConnector)
