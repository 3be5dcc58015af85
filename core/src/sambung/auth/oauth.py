"""OAuth 2.0 for connectors: what a vendor declares, its token endpoint, and the connect flow.

A connector whose vendor uses the authorization-code grant declares its endpoints as a class
attribute, `oauth = OAuthSpec(...)`, and takes `OAuthSettings` in its YAML block (client id and
secret, redirect URI). Core does the rest:

- `sambung connect OUTLET CONNECTOR` (or the admin endpoint) stores a random, single-use state
  (10 minutes, bound to the outlet and connector, with the PKCE verifier encrypted) and answers
  the vendor's authorization URL;
- the vendor sends the merchant back to the public listener's
  `GET /api/v1/integrations/oauth/{connector}/callback`, where the state is checked, the code
  exchanged, the tokens stored encrypted, and the connection's polling resumed;
- `sambung.auth.credentials` hands connectors a fresh access token and refreshes it when needed.

A sink connects the same way: its `Settings` mix in `OAuthClientSettings` and answer
`oauth_endpoints()`; `sambung connect --sink NAME` (or `POST /api/v1/sinks/{name}/connect`)
starts the flow, and its tokens are stored under the outlet `SINK_OUTLET` ("*").
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit

from pydantic import BaseModel, ConfigDict, HttpUrl, SecretStr

from sambung.errors import AuthError, InvalidGrant, InvalidPayload, RequestRejected, RetriableError
from sambung.http import RETRIABLE_STATUSES, VendorHttp, retry_after, vendor_message
from sambung.redaction import shorten

from .tokens import Token

# How long an authorization URL stays usable (the merchant logs in and consents meanwhile).
STATE_TTL = timedelta(minutes=10)
CALLBACK_PATH = "/api/v1/integrations/oauth/{connector}/callback"
# The outlet a sink's credentials are stored under: a sink (Accurate, say) belongs to no outlet,
# so its tokens are keyed ("*", sink name), and its callback is at CALLBACK_PATH with the sink's
# name. No outlet can be called "*" (outlet ids are slugs).
SINK_OUTLET = "*"


@dataclass(frozen=True)
class OAuthSpec:
    """A vendor's authorization-code endpoints and habits, declared by its connector."""

    authorize_url: str
    token_url: str
    scopes: tuple[str, ...] = ()
    # Proof Key for Code Exchange (S256), where the vendor supports it.
    pkce: bool = False
    # How the client authenticates at the token endpoint: HTTP Basic (Accurate) or form fields
    # (Moka).
    client_auth: Literal["basic", "body"] = "body"

    def at(self, base_url: str | None, scopes: list[str] | None = None) -> OAuthSpec:
        """The same endpoints on another host (a fake, a sandbox), paths kept; and the scopes
        the YAML asks for, when it does."""
        spec = replace(self, scopes=tuple(scopes)) if scopes else self
        if not base_url:
            return spec
        base = base_url.rstrip("/")
        return replace(
            spec,
            authorize_url=base + urlsplit(self.authorize_url).path,
            token_url=base + urlsplit(self.token_url).path,
        )


class OAuthClientSettings(BaseModel):
    """YAML options of an OAuth client (a connector's or a sink's): the app's id and secret,
    where the vendor sends the merchant back, and where the vendor's endpoints are."""

    client_id: str | None = None
    client_secret: SecretStr | None = None
    # Where the vendor sends the merchant back; default: the public listener's callback URL
    # (`server.public.base_url` + /api/v1/integrations/oauth/<name>/callback).
    redirect_uri: HttpUrl | None = None
    # Host of the vendor's authorize and token endpoints, when not the vendor's own (a sandbox).
    oauth_base_url: HttpUrl | None = None
    # Scopes to ask for; default: the vendor's own list.
    scopes: list[str] | None = None


class TokenAnswer(BaseModel):
    """A token endpoint's success answer (RFC 6749 §5.1)."""

    model_config = ConfigDict(extra="ignore")

    access_token: str
    refresh_token: str | None = None
    expires_in: int | None = None


def state_hash(state: str) -> str:
    """What the store keeps of a state: its SHA-256, hex."""
    return hashlib.sha256(state.encode()).hexdigest()


def new_state() -> str:
    """A random state for one authorization URL."""
    return secrets.token_urlsafe(32)


def new_verifier() -> str:
    """A PKCE code verifier (RFC 7636: 43 to 128 characters)."""
    return secrets.token_urlsafe(48)


def challenge_of(verifier: str) -> str:
    """The S256 code challenge of a verifier."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def authorization_url(
    spec: OAuthSpec,
    *,
    client_id: str,
    redirect_uri: str,
    state: str,
    verifier: str | None,
) -> str:
    """The vendor URL the merchant opens to consent."""
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "state": state,
    }
    if spec.scopes:
        query["scope"] = " ".join(spec.scopes)
    if verifier is not None:
        query["code_challenge"] = challenge_of(verifier)
        query["code_challenge_method"] = "S256"
    joiner = "&" if "?" in spec.authorize_url else "?"
    return f"{spec.authorize_url}{joiner}{urlencode(query)}"


class TokenEndpoint:
    """A vendor's token endpoint: code exchange and refresh, errors mapped to core's classes.

    `invalid_grant` → `InvalidGrant` (reconnect); other client errors → `AuthError`; 408, 429
    and 5xx, timeouts and connection errors → `RetriableError`. No message carries a token.
    """

    def __init__(
        self,
        http: VendorHttp,
        spec: OAuthSpec,
        client_id: str,
        client_secret: SecretStr | None,
    ) -> None:
        self.http = http
        self.spec = spec
        self.client_id = client_id
        self.client_secret = client_secret

    async def exchange(self, code: str, redirect_uri: str, verifier: str | None) -> Token:
        """Trade an authorization code for tokens."""
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        if verifier is not None:
            form["code_verifier"] = verifier
        return await self._call(form)

    async def refresh(self, refresh_token: SecretStr) -> Token:
        """A new access token (and maybe a rotated refresh token) for a refresh token."""
        return await self._call(
            {"grant_type": "refresh_token", "refresh_token": refresh_token.get_secret_value()}
        )

    async def _call(self, form: dict[str, str]) -> Token:
        headers: dict[str, str] = {"Accept": "application/json"}
        secret = self.client_secret.get_secret_value() if self.client_secret else ""
        if self.spec.client_auth == "basic":
            pair = f"{self.client_id}:{secret}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        else:
            form = {**form, "client_id": self.client_id}
            if secret:
                form["client_secret"] = secret
        answer = await self.http.send("POST", self.spec.token_url, data=form, headers=headers)
        grant = form["grant_type"]
        if answer.status in RETRIABLE_STATUSES:
            raise RetriableError(
                f"token endpoint ({grant}) answered HTTP {answer.status}",
                retry_after=retry_after(answer.headers, self.http.clock.now()),
            )
        if answer.status >= 400:
            code = _error_code(answer.body)
            message = f"token endpoint ({grant}) refused: HTTP {answer.status} {code}"
            if code == "invalid_grant":
                raise InvalidGrant(message)
            if answer.status in (400, 401, 403):
                raise AuthError(message)
            raise RequestRejected(message, status=answer.status)
        try:
            parsed = TokenAnswer.model_validate(answer.json())
        except (ValueError, InvalidPayload) as err:
            # Never the body: it may hold a token.
            raise RetriableError(f"token endpoint ({grant}) answer unreadable") from err
        expires = self.http.tokens.expires_in(parsed.expires_in) if parsed.expires_in else None
        refresh = SecretStr(parsed.refresh_token) if parsed.refresh_token else None
        return Token(SecretStr(parsed.access_token), expires, refresh)


def _error_code(body: bytes) -> str:
    """The OAuth `error` code of a refusal (a short vendor-chosen word, never a token)."""
    try:
        from sambung.parse import loads

        payload: Any = loads(body)
    except Exception:
        return vendor_message(body)[:80]
    if isinstance(payload, dict) and isinstance(payload.get("error"), str):
        return shorten(str(payload["error"]), 80)
    return vendor_message(body)[:80]


@dataclass(frozen=True)
class ConnectLink:
    """What `sambung connect` answers: the URL to open, until when, and where it returns."""

    outlet: str
    connector: str
    authorization_url: str
    expires_at: datetime
    redirect_uri: str
