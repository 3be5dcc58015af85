"""sambung connector for Midtrans (payments): signed HTTP notifications."""

from __future__ import annotations

from collections.abc import Callable

from sambung.plugin import Connector, hookimpl

from .connector import MidtransConnector

__all__ = ["MidtransConnector"]


@hookimpl
def sambung_register_connectors(register: Callable[[type[Connector]], None]) -> None:
    """Register the Midtrans connector."""
    register(MidtransConnector)
