"""sambung connector for Xendit (payments): invoice callbacks and a reconciliation poll."""

from __future__ import annotations

from sambung.plugin import RegisterConnector, hookimpl

from .connector import XenditConnector

__all__ = ["XenditConnector"]


@hookimpl
def sambung_register_connectors(register: RegisterConnector) -> None:
    """Register the Xendit connector."""
    register(XenditConnector)
