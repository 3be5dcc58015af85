"""sambung sink for Accurate Online: sales invoices per transaction or per business day."""

from __future__ import annotations

from sambung.plugin import RegisterSink, hookimpl

from .sink import AccurateSink

__all__ = ["AccurateSink"]


@hookimpl
def sambung_register_sinks(register: RegisterSink) -> None:
    """Register the Accurate sink."""
    register(AccurateSink)
