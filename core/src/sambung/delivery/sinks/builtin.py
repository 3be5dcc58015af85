"""The built-in sink types, registered through the same hook as any plugin's."""

from __future__ import annotations

from sambung.delivery.sinks import RegisterSink
from sambung.hookspecs import hookimpl

from .http import HttpSink
from .jsonl import JsonlSink
from .nats import NatsSink


@hookimpl
def sambung_register_sinks(register: RegisterSink) -> None:
    """Register `http`, `jsonl` and `nats`."""
    register(HttpSink)
    register(JsonlSink)
    register(NatsSink)
