"""Asking the running daemon over its admin listener, as the CLI's commands that need the
daemon's agreement do (`sambung backfill`, `sambung cursor set`): the daemon owns the loops."""

from __future__ import annotations

import json
from typing import Any

from sambung.config import LoadedConfig
from sambung.errors import SambungError


class DaemonUnreachable(SambungError):
    """The daemon cannot be asked: no admin listener, no token, or nobody answers."""


def admin_target(loaded: LoadedConfig) -> tuple[str, dict[str, str]]:
    """The admin listener's base URL as this machine reaches it, and the bearer header."""
    admin = loaded.config.server.admin
    if admin is None:
        raise DaemonUnreachable("no admin listener configured (server.admin)")
    unset = loaded.unresolved_at("server.admin.token")
    if unset is not None:
        raise DaemonUnreachable(f"cannot ask the daemon: {unset}")
    host = "127.0.0.1" if admin.host in ("0.0.0.0", "::", "") else admin.host
    headers = {"Authorization": f"Bearer {admin.token.get_secret_value()}"}
    return f"http://{host}:{admin.port}", headers


async def ask_daemon(
    loaded: LoadedConfig,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    timeout: float = 10.0,
) -> tuple[int, Any]:
    """One admin API call: (status, JSON body); `DaemonUnreachable` when nobody answers."""
    import aiohttp

    base, headers = admin_target(loaded)
    url = base + path
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.request(method, url, headers=headers, json=body) as response,
        ):
            text = await response.text()
    except (aiohttp.ClientError, TimeoutError, ValueError) as err:
        raise DaemonUnreachable(
            f"the daemon does not answer at {url} ({type(err).__name__})"
        ) from err
    try:
        return response.status, json.loads(text)
    except ValueError:
        if response.status == 200:  # a 200 that is not JSON is no daemon of ours
            raise DaemonUnreachable(f"the daemon does not answer at {url} (not JSON)") from None
        return response.status, None
