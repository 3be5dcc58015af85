"""sambung sink for Accurate Online: sales invoices per transaction or per business day."""

from __future__ import annotations

from collections.abc import Callable

from sambung.plugin import Sink, hookimpl

from .sink import AccurateSink

__all__ = ["AccurateSink"]


@hookimpl
def sambung_register_sinks(register: Callable[[type[Sink]], None]) -> None:
    """Register the Accurate sink."""
    register(AccurateSink)
