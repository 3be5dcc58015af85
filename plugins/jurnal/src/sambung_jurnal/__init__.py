"""sambung sink for Jurnal.id (Mekari): sales invoices per transaction or per business day."""

from __future__ import annotations

from collections.abc import Callable

from sambung.plugin import Sink, hookimpl

from .sink import JurnalSink

__all__ = ["JurnalSink"]


@hookimpl
def sambung_register_sinks(register: Callable[[type[Sink]], None]) -> None:
    """Register the Jurnal sink."""
    register(JurnalSink)
