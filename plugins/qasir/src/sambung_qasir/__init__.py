"""sambung connector for Qasir (POS): polls sales with a bearer API key."""

from __future__ import annotations

from collections.abc import Callable

from sambung.plugin import Connector, hookimpl

from .connector import QasirConnector

__all__ = ["QasirConnector"]


@hookimpl
def sambung_register_connectors(register: Callable[[type[Connector]], None]) -> None:
    """Register the Qasir connector."""
    register(QasirConnector)
