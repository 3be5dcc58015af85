"""sambung connector for Xendit (payments): invoice callbacks and a reconciliation poll."""

from __future__ import annotations

from collections.abc import Callable

from sambung.plugin import Connector, hookimpl

from .connector import XenditConnector

__all__ = ["XenditConnector"]


@hookimpl
def sambung_register_connectors(register: Callable[[type[Connector]], None]) -> None:
    """Register the Xendit connector."""
    register(XenditConnector)
