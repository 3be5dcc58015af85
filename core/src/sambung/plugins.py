"""Finding plugins: entry points in the `sambung` group, loaded safely, checked at registration."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any

import pluggy
import structlog

from sambung.connectors import MODE_SETTINGS

from . import hookspecs
from .alerts import notifier as builtin_notifier
from .alerts.channel import ChannelSettings, NotifierChannel
from .connectors import MODE_METHODS, Connector, ConnectorSettings, Mode, is_implemented
from .delivery.sinks import Sink, SinkSettings
from .delivery.sinks import builtin as builtin_sinks
from .errors import PluginError

ENTRY_POINT_GROUP = "sambung"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class PluginInfo:
    """One loaded plugin: where it came from and what it registered."""

    name: str
    distribution: str
    version: str
    connectors: tuple[str, ...]
    sinks: tuple[str, ...]


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded, and why."""

    name: str
    distribution: str
    error: str


@dataclass
class Registry:
    """Everything the loaded plugins registered, by name."""

    manager: pluggy.PluginManager
    connectors: dict[str, type[Connector[ConnectorSettings]]] = field(default_factory=dict)
    sinks: dict[str, type[Sink[SinkSettings]]] = field(default_factory=dict)
    notifiers: dict[str, type[NotifierChannel[ChannelSettings]]] = field(default_factory=dict)
    plugins: list[PluginInfo] = field(default_factory=list)
    failures: list[PluginFailure] = field(default_factory=list)

    @property
    def hook(self) -> Any:
        """The pluggy hook caller, for notification hooks such as `sambung_dead_letter`."""
        return self.manager.hook


def check_connector(cls: Any) -> type[Connector[ConnectorSettings]]:
    """Raise `PluginError` unless `cls` is a usable connector class."""
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise PluginError(f"{cls!r} is not a sambung.connectors.Connector subclass")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not _NAME.match(name):
        raise PluginError(f"{cls.__qualname__}.name must match {_NAME.pattern}, got {name!r}")
    modes: frozenset[Mode] = getattr(cls, "modes", frozenset())
    if not modes or not all(isinstance(mode, Mode) for mode in modes):
        raise PluginError(f"connector {name!r}: modes must be a non-empty set of Mode values")
    for mode in modes:
        for method in MODE_METHODS[mode]:
            if not is_implemented(getattr(cls, method, None)):
                raise PluginError(f"connector {name!r} declares mode {mode} but not {method}()")
    if not (isinstance(cls.Settings, type) and issubclass(cls.Settings, ConnectorSettings)):
        raise PluginError(f"connector {name!r}: Settings must subclass ConnectorSettings")
    # Core reads each mode's own settings (a file-drop inbox, a poll interval) typed.
    for mode in sorted(modes):
        base = MODE_SETTINGS[mode]
        if not issubclass(cls.Settings, base):
            raise PluginError(
                f"connector {name!r} declares mode {mode}: Settings must subclass {base.__name__}"
            )
    return cls


def check_sink(cls: Any) -> type[Sink[SinkSettings]]:
    """Raise `PluginError` unless `cls` is a usable sink class."""
    if not (isinstance(cls, type) and issubclass(cls, Sink)):
        raise PluginError(f"{cls!r} is not a sambung.delivery.sinks.Sink subclass")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not _NAME.match(name):
        raise PluginError(f"{cls.__qualname__}.name must match {_NAME.pattern}, got {name!r}")
    if not (isinstance(cls.Settings, type) and issubclass(cls.Settings, SinkSettings)):
        raise PluginError(f"sink {name!r}: Settings must subclass SinkSettings")
    return cls


def check_notifier(cls: Any) -> type[NotifierChannel[ChannelSettings]]:
    """Raise `PluginError` unless `cls` is a usable notifier channel class."""
    if not (isinstance(cls, type) and issubclass(cls, NotifierChannel)):
        raise PluginError(f"{cls!r} is not a sambung.alerts.channel.NotifierChannel subclass")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not _NAME.match(name):
        raise PluginError(f"{cls.__qualname__}.name must match {_NAME.pattern}, got {name!r}")
    if not (isinstance(cls.Settings, type) and issubclass(cls.Settings, ChannelSettings)):
        raise PluginError(f"notifier {name!r}: Settings must subclass ChannelSettings")
    return cls


def allowed_plugins(value: str | None) -> frozenset[str] | None:
    """Parse `SAMBUNG_PLUGINS` (a comma list); unset or empty means every installed plugin."""
    if not value or not value.strip():
        return None
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def load_plugins(
    allow: frozenset[str] | None = None,
    *,
    extra_modules: Iterable[ModuleType] = (),
    discovered: Iterable[EntryPoint] | None = None,
) -> Registry:
    """Load every allowed entry-point plugin; a plugin that fails is reported and skipped."""
    manager = pluggy.PluginManager(ENTRY_POINT_GROUP)
    manager.add_hookspecs(hookspecs)
    registry = Registry(manager=manager)
    # Core's own sink types register through the same hook, first, so no plugin shadows them.
    _register(registry, builtin_sinks, "sambung")
    _register(registry, builtin_notifier, "sambung.alerts")
    points = entry_points(group=ENTRY_POINT_GROUP) if discovered is None else discovered
    for point in sorted(points, key=lambda p: p.name):
        if allow is not None and point.name not in allow:
            continue
        distribution = point.dist.name if point.dist else "?"
        version = point.dist.version if point.dist else "?"
        try:
            module = point.load()
            connectors, sinks = _register(registry, module, point.name)
        except Exception as err:  # a broken third-party plugin must not stop the daemon
            failure = PluginFailure(point.name, distribution, f"{type(err).__name__}: {err}")
            registry.failures.append(failure)
            log.error(
                "plugin.load_failed",
                plugin=point.name,
                distribution=distribution,
                error=failure.error,
            )
            continue
        registry.plugins.append(
            PluginInfo(point.name, distribution, version, tuple(connectors), tuple(sinks))
        )
    for module in extra_modules:
        _register(registry, module, module.__name__)
    if allow is not None:
        for missing in sorted(
            allow - {p.name for p in registry.plugins} - {f.name for f in registry.failures}
        ):
            log.warning("plugin.not_installed", plugin=missing, hint="listed in SAMBUNG_PLUGINS")
    return registry


def _register(
    registry: Registry, module: ModuleType, plugin_name: str
) -> tuple[list[str], list[str]]:
    """Call one plugin's registration hooks; all of it registers, or none of it does."""
    connectors: dict[str, type[Connector[ConnectorSettings]]] = {}
    sinks: dict[str, type[Sink[SinkSettings]]] = {}
    notifiers: dict[str, type[NotifierChannel[ChannelSettings]]] = {}

    def register_connector(cls: type[Connector[ConnectorSettings]]) -> None:
        checked = check_connector(cls)
        if checked.name in registry.connectors or checked.name in connectors:
            raise PluginError(f"a connector named {checked.name!r} is already registered")
        connectors[checked.name] = checked

    def register_sink(cls: type[Sink[SinkSettings]]) -> None:
        checked = check_sink(cls)
        if checked.name in registry.sinks or checked.name in sinks:
            raise PluginError(f"a sink named {checked.name!r} is already registered")
        sinks[checked.name] = checked

    def register_notifier(cls: type[NotifierChannel[ChannelSettings]]) -> None:
        checked = check_notifier(cls)
        if checked.name in registry.notifiers or checked.name in notifiers:
            raise PluginError(f"a notifier channel named {checked.name!r} is already registered")
        notifiers[checked.name] = checked

    # Call this module's hooks alone, before it joins the manager, so a plugin that raises half
    # way registers nothing at all.
    probe = pluggy.PluginManager(ENTRY_POINT_GROUP)
    probe.add_hookspecs(hookspecs)
    probe.register(module, name=plugin_name)
    probe.hook.sambung_register_connectors(register=register_connector)
    probe.hook.sambung_register_sinks(register=register_sink)
    probe.hook.sambung_register_notifiers(register=register_notifier)
    registry.manager.register(module, name=plugin_name)
    registry.connectors.update(connectors)
    registry.sinks.update(sinks)
    registry.notifiers.update(notifiers)
    return sorted(connectors), sorted(sinks)
