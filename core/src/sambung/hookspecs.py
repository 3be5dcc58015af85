"""Every hook a sambung plugin can implement. Hooks only register; registered classes do the work.

A plugin module is named by an entry point in the `sambung` group and decorates plain functions
with `sambung.hookimpl`. Hooks are synchronous: pluggy cannot await, so anything slow belongs in
the registered class, whose async methods core calls from its own loops.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from sambung.alerts.channel import RegisterChannel
    from sambung.connectors import RegisterConnector
    from sambung.delivery.sinks import RegisterSink

    from .store import DeadLetter

hookspec = pluggy.HookspecMarker("sambung")
hookimpl = pluggy.HookimplMarker("sambung")


@hookspec
def sambung_register_connectors(register: RegisterConnector) -> None:
    """Register connector classes by calling `register(cls)` once for each.

    Called once, when the daemon or CLI loads plugins, before the YAML is validated (each
    connector's `Settings` model validates its block). `register` checks the class (a valid
    `name`, declared `modes` whose methods are implemented, a `Settings` model) and raises
    `PluginError` if it is unfit; the plugin is then reported and skipped. Return value: ignored.
    """


@hookspec
def sambung_register_sinks(register: RegisterSink) -> None:
    """Register sink classes (where the outbox delivers) by calling `register(cls)` once for each.

    Called once, at plugin load, like `sambung_register_connectors`; a top-level `sinks:` entry in
    the YAML names a registered sink by its `name` in `type`. Return value: ignored.
    """


@hookspec
def sambung_register_notifiers(register: RegisterChannel) -> None:
    """Register notifier channel classes (where alerts are sent) by calling `register(cls)`.

    Called once, at plugin load, like `sambung_register_sinks`; an `alerts.channels` entry in
    the YAML names a registered channel by its `name` in `type`. Core's own `webhook`, `email`
    and `telegram` register through this hook too. `register` raises `PluginError` for a class
    that is unfit (no valid `name`, no `ChannelSettings` model). Return value: ignored.
    """


@hookspec
def sambung_dead_letter(entry: DeadLetter) -> None:
    """Be told of a new dead-letter entry, for instance to e-mail the merchant.

    Called once for each new entry, after it is committed, in a worker thread (so a slow
    notification never holds up ingestion). `entry` carries stage, outlet, connector, error and
    ids, never a secret. Exceptions are logged and swallowed. Return value: ignored.
    """


@hookspec
def sambung_connection_needs_reauth(outlet: str, connector: str, error: str) -> None:
    """Be told that a vendor refused a connection's credentials even after a refresh.

    Called once when the connection enters `needs_reauth` (its polling stops until new
    credentials arrive), in a worker thread, with the outlet id, the connector's name and the
    vendor's message (never a secret). Exceptions are logged and swallowed. Return: ignored.
    A sink connected through OAuth (`sambung connect --sink`) is told as outlet "*" and the
    sink's name, once when it pauses for want of credentials.
    """
