"""sambung sink for Jurnal.id (Mekari): sales invoices per transaction or per business day."""

from __future__ import annotations

from sambung.plugin import RegisterSink, hookimpl

from .sink import JurnalSink

__all__ = ["JurnalSink"]


@hookimpl
def sambung_register_sinks(register: RegisterSink) -> None:
    """Register the Jurnal sink."""
    register(JurnalSink)
