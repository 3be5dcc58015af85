"""sambung's test kit for plugin authors: build connectors, sign requests, run the daemon.

The pytest fixtures live in `sambung.testing.pytest_plugin`, which pytest loads automatically
wherever sambung is installed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo

import structlog
from multidict import CIMultiDict, CIMultiDictProxy

from sambung.auth.signing import sign_hex
from sambung.connectors import (
    Connector,
    ConnectorContext,
    ConnectorSettings,
    WebhookRequest,
)
from sambung.models import Outlet

if TYPE_CHECKING:
    import aiohttp

    from sambung.intake.polling import PollLoop
    from sambung.store import Store

    from .fake_vendor import FakeClock


def outlet(id: str = "kemang", timezone: str = "Asia/Jakarta", name: str | None = None) -> Outlet:
    """An outlet for tests (Jakarta, WIB, unless told otherwise)."""
    return Outlet(id=id, name=name or id.title(), timezone=ZoneInfo(timezone))


C = TypeVar("C", bound=Connector[ConnectorSettings])


def make_connector(cls: type[C], settings: Mapping[str, Any], *, at: Outlet | None = None) -> C:
    """A connector instance as core would build it, from a YAML-shaped settings mapping."""
    validated = cls.Settings.model_validate(dict(settings))
    log = structlog.get_logger().bind(outlet=(at or outlet()).id, connector=cls.name)
    return cls(ConnectorContext(outlet=at or outlet(), settings=validated, log=log))


def signed_request(
    body: bytes, *, secret: str, header: str, extra_headers: Mapping[str, str] | None = None
) -> WebhookRequest:
    """A webhook request signed with hex HMAC-SHA256 of the body, as most POS vendors sign."""
    headers = CIMultiDict({header: sign_hex(secret, body), "Content-Type": "application/json"})
    headers.update(extra_headers or {})
    return WebhookRequest(body=body, headers=CIMultiDictProxy(headers))


def poll_loops(
    cls: type[Connector[ConnectorSettings]],
    settings: Mapping[str, Any],
    store: Store,
    session: aiohttp.ClientSession,
    *,
    clock: FakeClock,
    outlets: Sequence[str] = ("kemang",),
) -> list[PollLoop]:
    """Core's poll loops for `cls` at each outlet, on a fake clock, routing to sink `books`."""
    from sambung.config import Connection
    from sambung.intake.polling import PollService

    validated = cls.Settings.model_validate(dict(settings))
    connections = [Connection(outlet(id), cls, validated) for id in outlets]
    routes = lambda _outlet, _kind: ("books",)  # noqa: E731
    return PollService(connections, store, routes, clock=clock, sleep=clock.sleep).build(session)
