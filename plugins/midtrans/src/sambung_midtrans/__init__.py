"""sambung connector for Midtrans (payments): signed HTTP notifications."""

from __future__ import annotations

from sambung.plugin import RegisterConnector, hookimpl

from .connector import MidtransConnector

__all__ = ["MidtransConnector"]


@hookimpl
def sambung_register_connectors(register: RegisterConnector) -> None:
    """Register the Midtrans connector."""
    register(MidtransConnector)
