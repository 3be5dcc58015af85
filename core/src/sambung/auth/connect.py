"""The OAuth connect flow: hand out an authorization URL, take the vendor's callback.

`start_connect` stores a single-use state (10 minutes, bound to the outlet and connector, PKCE
verifier encrypted) and answers the URL; it backs `sambung connect` and the admin endpoint
`POST /api/v1/connections/{outlet}/{connector}/connect` (a sink: `sambung connect --sink
NAME`, `POST /api/v1/sinks/{sink}/connect`, stored under the outlet "*"). `OAuthCallback`
serves the public listener's `GET /api/v1/integrations/oauth/{connector}/callback` (`connector`
being a sink's name for a sink): every refusal (unknown,
replayed or expired state, consent denied, vendor error) answers a plain HTML page with its
status and is logged with its reason; success stores the tokens and resumes the connection.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from pydantic import BaseModel

from sambung.clock import Clock
from sambung.config import Connection, LoadedConfig
from sambung.connectors import Connector, ConnectorContext, ConnectorSettings
from sambung.errors import (
    AuthError,
    ConfigError,
    CredentialsUnreadable,
    RequestRejected,
    RetriableError,
    StoreUnavailable,
)
from sambung.http import VendorHttp
from sambung.intake.connections import find_connection
from sambung.redaction import shorten
from sambung.store import OAuthState

from .credentials import CredentialService
from .oauth import (
    CALLBACK_PATH,
    SINK_OUTLET,
    STATE_TTL,
    ConnectLink,
    OAuthClientSettings,
    OAuthSpec,
    TokenEndpoint,
    authorization_url,
    new_state,
    new_verifier,
    state_hash,
)

log = structlog.get_logger(__name__)

# Told after a connection got new tokens (outlet, connector): the daemon resumes its polling
# (or, for outlet "*", the sink's deliveries).
Resumer = Callable[[str, str], None]


@dataclass(frozen=True)
class OAuthTarget:
    """What a connect flow connects: one connection (outlet, connector), or one sink (outlet
    `SINK_OUTLET`, the sink's name), with its OAuth client settings and the vendor's endpoints."""

    outlet: str
    name: str
    settings: Any
    spec: OAuthSpec
    redirect_uri: str

    @property
    def label(self) -> str:
        """How pages and messages name it."""
        if self.outlet == SINK_OUTLET:
            return f"sink {self.name}"
        return f"{self.name} for outlet {self.outlet}"


def _oauth_connector(connection: Connection) -> tuple[Connector[ConnectorSettings], OAuthSpec]:
    bound = log.bind(outlet=connection.outlet.id, connector=connection.name)
    connector = connection.connector(
        ConnectorContext(outlet=connection.outlet, settings=connection.settings, log=bound)
    )
    spec = connector.oauth_endpoints()
    if spec is None:
        raise ConfigError(f"connector {connection.name} does not connect through OAuth")
    _require_client(
        connection.settings, f"outlet {connection.outlet.id}: set connectors.{connection.name}"
    )
    return connector, spec


def _require_client(settings: BaseModel, where: str) -> None:
    if not (isinstance(settings, OAuthClientSettings) and settings.client_id):
        raise ConfigError(f"{where}.client_id (and client_secret) to the OAuth app's, then connect")


def oauth_target(loaded: LoadedConfig, outlet: str, name: str) -> OAuthTarget:
    """The connection or sink (`outlet` == `SINK_OUTLET`) a connect flow is for; `ConfigError`
    when there is none or it does not connect through OAuth."""
    if outlet == SINK_OUTLET:
        settings = loaded.sink_settings.get(name)
        if settings is None:
            raise ConfigError(f"there is no sink {name!r} in {loaded.path}")
        spec = settings.oauth_endpoints()
        if spec is None:
            raise ConfigError(f"sink {name} does not connect through OAuth (see its `auth:`)")
        _require_client(settings, f"set sinks.{name}")
        return OAuthTarget(outlet, name, settings, spec, loaded.sink_oauth_callback_url(name))
    connection = find_connection(loaded, outlet, name)
    _, spec = _oauth_connector(connection)
    redirect = loaded.oauth_callback_url(connection)
    return OAuthTarget(outlet, name, connection.settings, spec, redirect)


async def start_connect(
    credentials: CredentialService, loaded: LoadedConfig, outlet: str, connector: str
) -> ConnectLink:
    """Store a fresh state for (outlet, connector) — or for a sink, (`SINK_OUTLET`, its name) —
    and answer the vendor's authorization URL."""
    target = oauth_target(loaded, outlet, connector)
    spec = target.spec
    state, verifier = new_state(), new_verifier() if spec.pkce else None
    hashed = state_hash(state)
    redirect = target.redirect_uri
    now = credentials.clock.now()
    await credentials.store.create_oauth_state(
        OAuthState(
            state_hash=hashed,
            outlet=outlet,
            connector=connector,
            redirect_uri=redirect,
            secret=credentials.box.seal(verifier.encode(), hashed) if verifier else None,
            created_at=now,
            expires_at=now + STATE_TTL,
        )
    )
    url = authorization_url(
        spec,
        client_id=target.settings.client_id,
        redirect_uri=redirect,
        state=state,
        verifier=verifier,
    )
    log.info("oauth.connect_started", outlet=outlet, connector=connector, pkce=spec.pkce)
    return ConnectLink(outlet, connector, url, now + STATE_TTL, redirect)


@dataclass(frozen=True)
class Page:
    """An answer of the callback: status, a title and one sentence for the merchant."""

    status: int
    title: str
    message: str

    def response(self) -> web.Response:
        """The page as plain HTML."""
        title, message = html.escape(self.title), html.escape(self.message)
        body = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{title} - sambung</title></head><body>"
            f"<h1>{title}</h1><p>{message}</p></body></html>"
        )
        return web.Response(status=self.status, text=body, content_type="text/html")


class OAuthCallback:
    """The public listener's OAuth callback: check the state, exchange the code, store."""

    def __init__(
        self,
        credentials: CredentialService,
        loaded: LoadedConfig,
        clock: Clock,
        resume: Resumer,
    ) -> None:
        self.credentials = credentials
        self.loaded = loaded
        self.clock = clock
        self.resume = resume

    async def handle(self, request: web.Request) -> web.Response:
        """Answer one callback; never a 500 for what the visitor sent."""
        connector = request.match_info["connector"]
        bound = log.bind(connector=connector)
        try:
            page = await self._handle(connector, request.query, bound)
        except StoreUnavailable as err:
            bound.error("oauth.callback_failed", reason="store unavailable", error=str(err))
            page = Page(503, "Try again", "sambung cannot save right now; open the link again.")
        return page.response()

    async def _handle(self, connector: str, query: Any, bound: Any) -> Page:
        state = query.get("state")
        if not state:
            return _refused(bound, 400, "missing state", "The link has no state parameter.")
        found = await self.credentials.store.consume_oauth_state(
            state_hash(state), now=self.clock.now()
        )
        if found is None or found.connector != connector:
            return _refused(
                bound,
                400,
                "unknown state (tampered or not issued here)",
                "This link was not issued by this sambung. Start again with `sambung connect`.",
            )
        bound = bound.bind(outlet=found.outlet)
        if found.consumed_at is not None:
            return _refused(
                bound,
                400,
                "state already used (replayed)",
                "This link was already used. Start again with `sambung connect`.",
            )
        if found.expires_at <= self.clock.now():
            return _refused(
                bound,
                400,
                "state expired",
                "This link expired (links last 10 minutes). Start again with `sambung connect`.",
            )
        error = query.get("error")
        if error == "access_denied":
            return _refused(
                bound, 403, "consent denied", "Access was not granted, so nothing was connected."
            )
        if error:
            shown = shorten(error, 80)  # masked, then cut: a cut first could leave a secret's head
            return _refused(
                bound,
                502,
                f"vendor error {shown}",
                f"The vendor answered an error ({shown}); nothing was connected.",
            )
        code = query.get("code")
        if not code:
            return _refused(bound, 400, "missing code", "The vendor sent no authorization code.")
        try:
            target = oauth_target(self.loaded, found.outlet, found.connector)
            verifier = (
                self.credentials.box.open(found.secret, found.state_hash).decode()
                if found.secret
                else None
            )
        except (ConfigError, CredentialsUnreadable) as err:
            return _refused(bound, 400, str(err), "This connection cannot be connected now.")
        try:
            token = await self._exchange(target, code, found.redirect_uri, verifier)
        except (AuthError, RequestRejected, RetriableError) as err:
            return _refused(
                bound,
                502,
                f"code exchange failed: {type(err).__name__}: {err}",
                "The vendor did not accept the authorization; nothing was connected.",
            )
        await self.credentials.connected(found.outlet, found.connector, token)
        bound.info(
            "oauth.connected",
            expires_at=token.expires_at.isoformat() if token.expires_at else None,
        )
        self.resume(found.outlet, found.connector)
        return Page(
            200,
            "Connected",
            f"{target.label[0].upper()}{target.label[1:]} is connected. You can close this page.",
        )

    async def _exchange(
        self,
        target: OAuthTarget,
        code: str,
        redirect_uri: str,
        verifier: str | None,
    ) -> Any:
        settings = target.settings
        async with aiohttp.ClientSession() as session:
            http = VendorHttp(session, clock=self.clock, tokens=self.credentials.tokens)
            endpoint = TokenEndpoint(http, target.spec, settings.client_id, settings.client_secret)
            return await endpoint.exchange(code, redirect_uri, verifier)


def _refused(bound: Any, status: int, reason: str, message: str) -> Page:
    bound.warning("oauth.callback_refused", reason=reason, status=status)
    title = {403: "Not connected", 502: "Vendor error"}.get(status, "Link not valid")
    return Page(status, title, message)


def add_callback_route(app: web.Application, callback: OAuthCallback) -> None:
    """Mount the OAuth callback on the public app."""
    app.router.add_get(CALLBACK_PATH.format(connector="{connector}"), callback.handle)


def add_connect_route(
    app: web.Application, credentials: CredentialService, loaded: Callable[[], LoadedConfig]
) -> None:
    """Mount `POST /api/v1/connections/{outlet}/{connector}/connect` and
    `POST /api/v1/sinks/{sink}/connect` on the admin app."""

    async def answer(outlet: str, name: str) -> web.Response:
        try:
            link = await start_connect(credentials, loaded(), outlet, name)
        except ConfigError as err:
            message = "; ".join(str(p) for p in err.problems)
            return web.json_response(
                {"success": False, "error": "not_connectable", "message": message}, status=404
            )
        except StoreUnavailable:
            return web.json_response(
                {"success": False, "error": "store_unavailable", "message": "try again"},
                status=503,
            )
        return web.json_response(
            {
                "success": True,
                "outlet": link.outlet,
                "connector": link.connector,
                "authorization_url": link.authorization_url,
                "expires_at": link.expires_at.isoformat(),
                "redirect_uri": link.redirect_uri,
            }
        )

    async def connect(request: web.Request) -> web.Response:
        return await answer(request.match_info["outlet"], request.match_info["connector"])

    async def connect_sink(request: web.Request) -> web.Response:
        return await answer(SINK_OUTLET, request.match_info["sink"])

    app.router.add_post("/api/v1/connections/{outlet}/{connector}/connect", connect)
    app.router.add_post("/api/v1/sinks/{sink}/connect", connect_sink)
