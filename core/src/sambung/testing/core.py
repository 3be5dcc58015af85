"""Core's own machinery, for a plugin's integration tests: plugin loading, the config loader,
the store, poll loops and webhook ingest, as the daemon wires them.

A plugin's unit tests need only `sambung.plugin` and `sambung.testing`; tests that drive a
connector through the daemon's real loops import these from here, so core can move its
modules without breaking every plugin's tests.
"""

from __future__ import annotations

from ..auth.credentials import CredentialService
from ..auth.oauth import SINK_OUTLET
from ..config import load_config
from ..intake.polling import PollLoop, from_cursor
from ..intake.webhooks import Answer, WebhookIngest
from ..plugins import load_plugins
from ..runtime.status import sink_status, sink_table
from ..store import ConnectionStatus, IngestRequest, Store, open_store
from ..store.sqlite import SqliteStore

__all__ = [
    "SINK_OUTLET",
    "Answer",
    "ConnectionStatus",
    "CredentialService",
    "IngestRequest",
    "PollLoop",
    "SqliteStore",
    "Store",
    "WebhookIngest",
    "from_cursor",
    "load_config",
    "load_plugins",
    "open_store",
    "sink_status",
    "sink_table",
]
