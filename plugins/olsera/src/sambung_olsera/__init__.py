"""sambung connector for Olsera (POS): polls closed orders with an app id and secret key."""

from __future__ import annotations

from sambung.plugin import RegisterConnector, hookimpl

from .connector import OlseraConnector

__all__ = ["OlseraConnector"]


@hookimpl
def sambung_register_connectors(register: RegisterConnector) -> None:
    """Register the Olsera connector."""
    register(OlseraConnector)
