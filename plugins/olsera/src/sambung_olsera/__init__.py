"""sambung connector for Olsera (POS): polls closed orders with an app id and secret key."""

from __future__ import annotations

from collections.abc import Callable

from sambung.plugin import Connector, hookimpl

from .connector import OlseraConnector

__all__ = ["OlseraConnector"]


@hookimpl
def sambung_register_connectors(register: Callable[[type[Connector]], None]) -> None:
    """Register the Olsera connector."""
    register(OlseraConnector)
