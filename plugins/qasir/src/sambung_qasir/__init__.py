"""sambung connector for Qasir (POS): polls sales with a bearer API key."""

from __future__ import annotations

from sambung.plugin import RegisterConnector, hookimpl

from .connector import QasirConnector

__all__ = ["QasirConnector"]


@hookimpl
def sambung_register_connectors(register: RegisterConnector) -> None:
    """Register the Qasir connector."""
    register(QasirConnector)
