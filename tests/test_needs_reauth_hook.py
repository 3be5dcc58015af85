"""The daemon tells plugins once when a polled connection needs new credentials."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from sambung import hookimpl
from sambung.config import load_config
from sambung.plugins import load_plugins
from sambung.runtime.daemon import Daemon
from sambung.store import ConnectionState, ConnectionStatus

told: list[dict[str, Any]] = []


@hookimpl
def sambung_connection_needs_reauth(outlet: str, connector: str, error: str) -> None:
    told.append({"outlet": outlet, "connector": connector, "error": error})


async def test_the_hook_gets_outlet_connector_and_the_vendors_message(tmp_path: Path) -> None:
    config = tmp_path / "sambung.yaml"
    config.write_text(
        "outlets:\n  - id: kemang\n    name: Kemang\n    connectors:\n"
        "      qasir: {mode: poll, api_key: k}\n",
        encoding="utf-8",
    )
    registry = load_plugins(extra_modules=[_this_module()])
    daemon = Daemon(load_config(config, registry), registry)
    state = ConnectionState(
        "kemang", "qasir", "poll", ConnectionStatus.NEEDS_REAUTH, last_error="AuthError: 401"
    )

    daemon._notify_needs_reauth(state)
    await asyncio.gather(*daemon._background)

    assert told == [{"outlet": "kemang", "connector": "qasir", "error": "AuthError: 401"}]


def _this_module() -> ModuleType:
    return sys.modules[__name__]
