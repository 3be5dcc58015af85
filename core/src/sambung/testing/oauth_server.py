"""A fake OAuth 2.0 authorization server: authorize, token, refresh with rotation, revocation.

A vendor fake that connects through OAuth subclasses it (Moka's does) and so issues the tokens
its data endpoints accept; tests use it alone too::

    server = FakeAuthorizationServer(client_id="c", client_secret="s", client_auth="basic")
    async with server.serve() as url:
        # GET {url}/oauth/authorize?... answers 302 to redirect_uri?code=...&state=...
        server.deny = True                   # ... or ?error=access_denied&state=...
        server.faults.fail(503, path="/oauth/token")   # the token endpoint is down once
        server.refresh_calls                 # refresh grants received (single-flight checks)

The token endpoint checks the client (HTTP Basic or form fields, as configured), the code, its
redirect URI and its PKCE verifier (S256); a code works once; a refresh token works once (it
rotates) and a used or revoked one gets `invalid_grant`.

`persist_to(path)` keeps the issued tokens in a JSON file, as a real vendor keeps them across
its own restarts: the demo (`sambung run --simulate`) uses it, so a restarted demo refreshes
the tokens it stored instead of being refused.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode

from aiohttp import web

from sambung.auth.oauth import challenge_of

from .fake_vendor import FakeVendor
from .secret_scan import remember


@dataclass
class Grant:
    """An authorization code handed out, and what it was issued for."""

    client_id: str
    redirect_uri: str
    challenge: str | None
    scope: str
    used: bool = False


class FakeAuthorizationServer(FakeVendor):
    """OAuth 2.0 authorization-code and refresh grants, as a local aiohttp app."""

    token_paths = ("/oauth/token", "/oauth/revoke")

    def __init__(
        self,
        *,
        client_id: str = "fake-client",
        client_secret: str = "fake-client-secret",
        client_auth: Literal["basic", "body"] = "body",
        require_pkce: bool = False,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.client_id = client_id
        self.client_secret = client_secret
        remember(client_secret)
        self.client_auth = client_auth
        self.require_pkce = require_pkce
        self.codes: dict[str, Grant] = {}
        self.revoked: set[str] = set()
        # Answer the next authorize with `error=access_denied` (the merchant said no).
        self.deny = False
        self.token_calls = 0
        self.refresh_calls = 0
        self.exchanges = 0
        self.state_file: Path | None = None

    def persist_to(self, path: Path) -> None:
        """Load the tokens kept in `path` (if any) and keep every later change there."""
        self.state_file = path
        if path.exists():
            state = json.loads(path.read_text(encoding="utf-8"))
            now = self.clock.now()
            for token, expiry in state.get("tokens", {}).items():
                if datetime.fromisoformat(expiry) > now:
                    self.tokens[token] = datetime.fromisoformat(expiry)
            self.refresh_tokens.update(state.get("refresh_tokens", []))
            self.revoked.update(state.get("revoked", []))
            remember(*self.tokens, *self.refresh_tokens)
        self._save_state()

    def _save_state(self) -> None:
        """Write the tokens atomically, readable by the owner only (they are secrets)."""
        if self.state_file is None:
            return
        now = self.clock.now()
        state = {
            "tokens": {t: e.isoformat() for t, e in self.tokens.items() if e > now},
            "refresh_tokens": sorted(self.refresh_tokens),
            "revoked": sorted(self.revoked),
        }
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        partial = self.state_file.with_name(self.state_file.name + ".tmp")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(state, out)
        os.replace(partial, self.state_file)

    def issue_token(self) -> dict[str, Any]:
        """A new token pair, kept in the state file when there is one."""
        issued = super().issue_token()
        self._save_state()
        return issued

    def routes(self, app: web.Application) -> None:
        """`GET /oauth/authorize`, `POST /oauth/token`, `POST /oauth/revoke`."""
        app.router.add_get("/oauth/authorize", self.authorize)
        app.router.add_post("/oauth/token", self.token)
        app.router.add_post("/oauth/revoke", self.revoke)

    async def authorize(self, request: web.Request) -> web.Response:
        """The consent screen, consented at once: 302 back with a code (or a refusal)."""
        query = request.query
        redirect = query.get("redirect_uri", "")
        if query.get("client_id") != self.client_id or not redirect:
            return web.Response(status=400, text="unknown client or no redirect_uri")
        if query.get("response_type") != "code":
            return web.Response(status=400, text="response_type must be code")
        challenge = query.get("code_challenge")
        if challenge is not None and query.get("code_challenge_method") != "S256":
            return web.Response(status=400, text="only S256 code challenges")
        if self.require_pkce and challenge is None:
            return web.Response(status=400, text="PKCE required")
        back: dict[str, str] = {"state": query.get("state", "")}
        if self.deny:
            self.deny = False
            back["error"] = "access_denied"
        else:
            code = secrets.token_urlsafe(24)
            self.codes[code] = Grant(self.client_id, redirect, challenge, query.get("scope", ""))
            back["code"] = code
        joiner = "&" if "?" in redirect else "?"
        raise web.HTTPFound(f"{redirect}{joiner}{urlencode(back)}")

    async def token(self, request: web.Request) -> web.Response:
        """Authorization-code and refresh-token grants."""
        self.token_calls += 1
        form = await request.post()
        if not self._client_ok(request, form):
            return _oauth_error("invalid_client", 401)
        grant = form.get("grant_type")
        if grant == "authorization_code":
            return self._exchange(form)
        if grant == "refresh_token":
            self.refresh_calls += 1
            refresh = str(form.get("refresh_token", ""))
            if refresh not in self.refresh_tokens or refresh in self.revoked:
                return _oauth_error("invalid_grant")
            self.refresh_tokens.discard(refresh)  # rotation: a refresh token works once
            return web.json_response(self.issue_token())
        return _oauth_error("unsupported_grant_type")

    def _exchange(self, form: Any) -> web.Response:
        self.exchanges += 1
        grant = self.codes.get(str(form.get("code", "")))
        if grant is None or grant.used or grant.redirect_uri != form.get("redirect_uri"):
            return _oauth_error("invalid_grant")
        grant.used = True
        if grant.challenge is not None:
            verifier = str(form.get("code_verifier", ""))
            if not verifier or not hmac.compare_digest(challenge_of(verifier), grant.challenge):
                return _oauth_error("invalid_grant")
        return web.json_response(self.issue_token())

    async def revoke(self, request: web.Request) -> web.Response:
        """RFC 7009: forget an access or refresh token; 200 whatever it was."""
        form = await request.post()
        token = str(form.get("token", ""))
        self.revoked.add(token)
        self.refresh_tokens.discard(token)
        self.tokens.pop(token, None)
        self._save_state()
        return web.Response(status=200)

    def revoke_all(self) -> None:
        """Every refresh token issued so far stops working (the merchant disconnected us)."""
        self.revoked |= self.refresh_tokens
        self.refresh_tokens.clear()
        self._save_state()

    def _client_ok(self, request: web.Request, form: Any) -> bool:
        if self.client_auth == "basic":
            header = request.headers.get("Authorization", "")
            try:
                pair = base64.b64decode(header.removeprefix("Basic ")).decode()
            except (binascii.Error, UnicodeDecodeError):
                return False
            given_id, _, given_secret = pair.partition(":")
        else:
            given_id = str(form.get("client_id", ""))
            given_secret = str(form.get("client_secret", ""))
        return given_id == self.client_id and hmac.compare_digest(
            given_secret.encode(), self.client_secret.encode()
        )


def _oauth_error(error: str, status: int = 400) -> web.Response:
    return web.json_response({"error": error}, status=status)
