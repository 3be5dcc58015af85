"""Connector instances built from the config, for the subsystems that need them by name."""

from __future__ import annotations

import structlog

from sambung.clock import Clock
from sambung.config import Connection, LoadedConfig
from sambung.connectors import ConnectorContext, FileDropConnector, FileDropSettings, Mode
from sambung.errors import ConfigError

log = structlog.get_logger(__name__)


def file_drop_connector(
    connection: Connection, clock: Clock, *, bound_to: str = "filedrop"
) -> FileDropConnector[FileDropSettings]:
    """The connector instance of one connection, for reading its CSV files."""
    bound = log.bind(outlet=connection.outlet.id, connector=connection.name, via=bound_to)
    context = ConnectorContext(
        outlet=connection.outlet, settings=connection.settings, log=bound, clock=clock
    )
    instance = connection.connector(context)
    if not isinstance(instance, FileDropConnector):
        raise ConfigError(f"connector {connection.name} cannot read CSV files (no file-drop mode)")
    return instance


def find_connection(loaded: LoadedConfig, outlet: str, connector: str) -> Connection:
    """The configured connection of `connector` at `outlet`; `ConfigError` if there is none."""
    for connection in loaded.connections:
        if connection.outlet.id == outlet and connection.name == connector:
            return connection
    raise ConfigError(f"outlet {outlet!r} has no {connector!r} connector in {loaded.path}")


def file_drop_connections(loaded: LoadedConfig) -> list[Connection]:
    """Enabled connections whose mode includes file-drop."""
    return [
        c for c in loaded.connections if c.settings.enabled and Mode.FILE_DROP in c.settings.mode
    ]
