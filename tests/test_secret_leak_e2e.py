"""Secrets a vendor echoes in its error bodies reach no log, no status and no database column.

The daemon runs as a real process against a vendor that repeats every credential it received
(the bearer token it was sent, the client secret and refresh token of a token request, the
HTTP Basic pair) in its 4xx and 5xx answers, as JSON and as plain text, raw and URL-encoded.
Pawoon polls with client credentials (a token obtained at run time), Moka with OAuth tokens
(seeded, then refreshed at run time), Xendit with HTTP Basic; an HTTP sink's receiver echoes
the sink's own Authorization header. Afterwards every form of every secret is looked for in the
daemon's log, `sambung status` (text and JSON), `/api/v1/status`, `/readyz`, every page of the
operator console and every text column of every table.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import sqlite3
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web
from sambung.auth.signing import sign_hex
from sambung.testing.daemon import DaemonProcess, free_port
from sambung.testing.secret_scan import remember
from sambung_pawoon.fake import webhook_bytes

WIB = ZoneInfo("Asia/Jakarta")
ADMIN_TOKEN = secrets.token_urlsafe(24)


async def console_pages(
    session: aiohttp.ClientSession, admin: str, status: str, dead_letters: str
) -> list[tuple[str, str]]:
    """Every page of the operator console, signed in: each connection, sink and dead letter."""
    async with session.post(admin + "/console/signin", data={"token": ADMIN_TOKEN}) as signed:
        assert signed.status == 200, await signed.text()
    found = json.loads(status)
    paths = ["/", "/console/dead-letters", "/console/records", "/console/import"]
    paths += ["/console/config", "/console/dead-letters?status=all", "/console/reconciliations"]
    paths += [f"/console/connections/{c['outlet']}/{c['connector']}" for c in found["connections"]]
    paths += [f"/console/sinks/{s['sink']}" for s in found["sinks"]]
    paths += [f"/console/dead-letters/{e['id']}" for e in json.loads(dead_letters)["dead_letters"]]
    pages = []
    for path in paths:
        async with session.get(admin + path) as response:
            assert response.status == 200, (path, response.status)
            pages.append((f"console {path}", await response.text()))
    return pages


def awkward_secret() -> str:
    """A secret holding `+`, `/` and `=`, so its URL-encoded form differs from it."""
    while True:
        value = "s+/" + base64.b64encode(os.urandom(18)).decode() + "=="
        if "+" in value and "/" in value:
            return value


class EchoVendor:
    """Pawoon, Moka and Xendit endpoints (and a sink receiver) that answer errors quoting
    every credential they were sent; which error depends on the client id or account."""

    def __init__(self) -> None:
        self.issued: set[str] = set()
        self.answered: list[tuple[str, int]] = []

    def token(self) -> str:
        value = secrets.token_urlsafe(20)
        self.issued.add(value)
        remember(value)
        return value

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/pawoon/oauth/token", self.pawoon_token)
        app.router.add_get("/pawoon/transactions", self.pawoon_data)
        app.router.add_post("/moka/oauth/token", self.moka_token)
        app.router.add_get(
            "/moka/v3/outlets/{outlet}/reports/get_latest_transactions", self.moka_data
        )
        app.router.add_get("/xendit/v2/invoices", self.xendit_data)
        app.router.add_post("/sink", self.sink)
        return app

    def _answer(self, what: str, status: int, text: str, *, as_json: bool) -> web.Response:
        self.answered.append((what, status))
        if as_json:
            return web.json_response({"message": text, "error": text}, status=status)
        return web.Response(text=text, status=status, content_type="text/plain")

    async def pawoon_token(self, request: web.Request) -> web.Response:
        raw = await request.text()
        body = json.loads(raw)
        client = body["client_id"]
        if client == "pawoon-bad-client":  # refuses the client, quoting the whole request
            return self._answer("pawoon-token", 401, f"invalid client: {raw}", as_json=True)
        if client == "pawoon-token-down":  # a 500 quoting the secret URL-encoded
            secret = quote_plus(body["client_secret"])
            return self._answer("pawoon-token", 500, f"boom client_secret={secret}", as_json=False)
        return web.json_response({"access_token": self.token(), "expires_in": 3600})

    async def pawoon_data(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        outlet = request.query.get("outlet_id")
        if outlet == "p500":
            return self._answer("pawoon-data", 500, f"db down for {auth}", as_json=True)
        if outlet == "p403":
            # Long enough that a cut at 200 characters would fall inside the token.
            text = f"forbidden: {'.' * 167} {auth}"
            return self._answer("pawoon-data", 403, text, as_json=False)
        return self._answer("pawoon-data", 401, f"expired {auth} ({quote(auth)})", as_json=True)

    async def moka_token(self, request: web.Request) -> web.Response:
        form = await request.post()
        refresh = str(form.get("refresh_token", ""))
        client, secret = str(form.get("client_id")), str(form.get("client_secret"))
        if client == "moka-refused":
            pair = base64.b64encode(f"{client}:{secret}".encode()).decode()
            text = f"refresh token {refresh} refused for Basic {pair} / {secret}"
            self.answered.append(("moka-token", 400))
            return web.json_response(
                {"error": "invalid_grant", "error_description": text}, status=400
            )
        return web.json_response(
            {"access_token": self.token(), "refresh_token": self.token(), "expires_in": 3600}
        )

    async def moka_data(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ")
        if token not in self.issued:  # the seeded token: refused, quoted
            return self._answer("moka-data", 401, f"unknown token {token}", as_json=True)
        return self._answer("moka-data", 502, f"upstream failed for {auth}", as_json=False)

    async def xendit_data(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        key = base64.b64decode(auth.removeprefix("Basic ")).decode().rstrip(":")
        return self._answer("xendit-data", 401, f"INVALID_API_KEY {auth} key={key}", as_json=True)

    async def sink(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        return self._answer("sink", 400, f"not for you, {auth}", as_json=True)


def poll(**settings: Any) -> dict[str, Any]:
    return {"mode": "poll", "interval": "15s", "retries": 0, **settings}


def outlet(outlet_id: str, connectors: dict[str, Any]) -> dict[str, Any]:
    return {"id": outlet_id, "name": outlet_id, "connectors": connectors}


def forms(value: str) -> set[str]:
    """A secret and the encodings an echo may use."""
    return {value, quote(value, safe=""), quote_plus(value)}


def database_text(db: Path) -> list[tuple[str, str]]:
    """(table.column, text) of every text or blob value in the database."""
    found: list[tuple[str, str]] = []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            cursor = conn.execute(f'SELECT * FROM "{table}"')
            columns = [d[0] for d in cursor.description]
            for row in cursor:
                for column, value in zip(columns, row, strict=True):
                    if isinstance(value, bytes):
                        value = value.decode("utf-8", errors="replace")
                    if isinstance(value, str):
                        found.append((f"{table}.{column}", value))
    return found


def leaks(where: str, text: str, secrets_: Iterable[str]) -> list[str]:
    return [f"{where}: {s[:4]}…" for s in secrets_ if s in text]


async def settled(db: Path, expected: int, timeout: float = 60.0) -> None:
    """Wait until `expected` poll connections have a stored error."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        rows: list[Any] = []
        if db.exists():
            try:
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                    rows = conn.execute(
                        "SELECT outlet FROM connection_states WHERE last_error IS NOT NULL"
                    ).fetchall()
                    rows += conn.execute("SELECT id FROM dead_letters").fetchall()
            except sqlite3.OperationalError:
                rows = []
        if len(rows) >= expected:
            return
        assert asyncio.get_running_loop().time() < deadline, rows
        await asyncio.sleep(0.2)


async def test_echoed_credentials_reach_no_log_status_api_or_column(tmp_path: Path) -> None:
    vendor = EchoVendor()
    runner = web.AppRunner(vendor.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    client_secrets = {name: awkward_secret() for name in ("p500", "p403", "p401", "bad", "down")}
    moka = {
        name: (awkward_secret(), secrets.token_urlsafe(20), secrets.token_urlsafe(20))
        for name in ("moka-ok", "moka-refused")
    }
    xendit_key = "xnd_development_" + secrets.token_urlsafe(24)
    sink_token = secrets.token_urlsafe(24)
    sink_secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    webhook_secret = awkward_secret()

    def pawoon(client_id: str, secret: str, pawoon_outlet: str) -> dict[str, Any]:
        return poll(
            client_id=client_id,
            client_secret=secret,
            base_url=f"{url}/pawoon",
            pawoon_outlet_id=pawoon_outlet,
        )

    outlets = [
        outlet("p500", {"pawoon": pawoon("pawoon-p500", client_secrets["p500"], "p500")}),
        outlet("p403", {"pawoon": pawoon("pawoon-p403", client_secrets["p403"], "p403")}),
        outlet("p401", {"pawoon": pawoon("pawoon-p401", client_secrets["p401"], "p401")}),
        outlet("bad", {"pawoon": pawoon("pawoon-bad-client", client_secrets["bad"], "x")}),
        outlet("down", {"pawoon": pawoon("pawoon-token-down", client_secrets["down"], "x")}),
        outlet("xendit", {"xendit": poll(secret_key=xendit_key, base_url=f"{url}/xendit")}),
        outlet(
            "hook",
            {"pawoon": {"mode": "webhook", "webhook_secret": webhook_secret}},
        ),
    ]
    for name, (secret, access, refresh) in moka.items():
        outlets.append(
            outlet(
                name,
                {
                    "moka": poll(
                        outlet_id="41230",
                        client_id=name,
                        client_secret=secret,
                        access_token=access,
                        refresh_token=refresh,
                        base_url=f"{url}/moka",
                        oauth_base_url=f"{url}/moka",
                    )
                },
            )
        )
    config = {
        "server": {"admin": {"host": "127.0.0.1", "port": free_port(), "token": ADMIN_TOKEN}},
        "outlets": outlets,
        "sinks": {
            "backend": {
                "type": "http",
                "url": f"{url}/sink",
                "secret": sink_secret,
                "headers": {"Authorization": f"Bearer {sink_token}"},
            }
        },
    }
    key = secrets.token_urlsafe(32)
    daemon = DaemonProcess(tmp_path, config, env={"SAMBUNG_SECRET_KEY": key})
    remember(*client_secrets.values(), xendit_key, sink_token, webhook_secret, sink_secret)
    for secret, access, refresh in moka.values():
        remember(secret, access, refresh)
    await asyncio.to_thread(daemon.start)
    admin = f"http://127.0.0.1:{config['server']['admin']['port']}"  # type: ignore[index]
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    try:
        # A signed webhook gives the sink something to deliver (and its receiver refuses it).
        body = webhook_bytes(1, datetime.now(WIB))
        signature = sign_hex(webhook_secret, body)
        status, answer = await asyncio.to_thread(
            daemon.post,
            "/api/v1/integrations/webhooks/pawoon/hook",
            body,
            {"X-Webhook-Signature": signature},
        )
        assert status == 200, answer
        # Five Pawoon, one Xendit, two Moka connections fail; the sink dead-letters one row.
        await settled(daemon.workdir / "sambung.db", 9)
        # unsafe: the jar keeps the console's cookie for an IP address (127.0.0.1) too.
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            shown = []
            for path in ("/api/v1/status", "/readyz", "/api/v1/dead-letters"):
                async with session.get(admin + path, headers=auth) as response:
                    shown.append((path, await response.text()))
            shown += await console_pages(session, admin, shown[0][1], shown[2][1])
    finally:
        await asyncio.to_thread(daemon.terminate)
        await runner.cleanup()

    printed = []
    for args in (("status",), ("status", "--json")):
        result = daemon.cli(*args)
        printed.append((" ".join(args), result.stdout + result.stderr))

    # The vendor did echo: every kind of answer above was given.
    kinds = {what for what, _ in vendor.answered}
    assert kinds >= {"pawoon-token", "pawoon-data", "moka-token", "moka-data", "xendit-data"}
    assert "sink" in kinds, vendor.answered
    every = set(vendor.issued) | set(client_secrets.values())
    every |= {xendit_key, sink_token, sink_secret, webhook_secret, ADMIN_TOKEN, key}
    for secret, access, refresh in moka.values():
        every |= {secret, access, refresh}
    pairs = [f"{xendit_key}:", *(f"{name}:{s}" for name, (s, _, _) in moka.items())]
    every_form = {f for s in every for f in forms(s)}
    every_form |= {base64.b64encode(p.encode()).decode() for p in pairs}
    # A message cut short must not keep a token's head either.
    every_form |= {token[:12] for token in vendor.issued}

    found = leaks("daemon log", daemon.logs(), every_form)
    for where, text in (*shown, *printed):
        found += leaks(where, text, every_form)
    for where, text in database_text(daemon.workdir / "sambung.db"):
        found += leaks(where, text, every_form)
    assert not found, "\n".join(sorted(set(found)))
    # The errors themselves are still there, masked: an operator sees what went wrong.
    assert "***" in shown[0][1]
