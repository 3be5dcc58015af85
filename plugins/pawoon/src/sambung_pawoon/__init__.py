"""sambung connector for Pawoon (POS): signed webhooks for sales and stock levels."""

from __future__ import annotations

from collections.abc import Callable

from sambung.plugin import Connector, hookimpl

from .connector import PawoonConnector

__all__ = ["PawoonConnector"]


@hookimpl
def sambung_register_connectors(register: Callable[[type[Connector]], None]) -> None:
    """Register the Pawoon connector."""
    register(PawoonConnector)
