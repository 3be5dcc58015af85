"""The OAuth callback's refusals, and what a refused or failing refresh does to a poll loop.

In-process, with an injectable clock: a tampered, expired or replayed state, a wrong connector,
denied consent and a vendor error each answer a clear page with their status, log why, and store
nothing. `invalid_grant` on refresh puts the connection in `needs_reauth` and tells the hook
once; a 5xx on refresh fails the run (retried later) without `needs_reauth`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest
import structlog
from aiohttp import web
from sambung.auth.connect import OAuthCallback, start_connect
from sambung.auth.credentials import CredentialService, SecretBox
from sambung.config import LoadedConfig, load_config
from sambung.intake.polling import PollService
from sambung.plugins import load_plugins
from sambung.store import ConnectionState, ConnectionStatus, Store
from sambung.store.sqlite import SqliteStore
from sambung.testing.fake_vendor import FakeClock
from sambung_moka.fake import MokaFake

NOW = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
CALLBACK = "/api/v1/integrations/oauth/moka/callback"


@dataclass
class World:
    """A served callback, the fake Moka, and the pieces between them."""

    vendor: MokaFake
    store: Store
    credentials: CredentialService
    loaded: LoadedConfig
    clock: FakeClock
    callback_url: str
    resumed: list[tuple[str, str]]

    async def link(self) -> str:
        """A fresh authorization URL for kemang/moka."""
        return (
            await start_connect(self.credentials, self.loaded, "kemang", "moka")
        ).authorization_url

    async def follow(self, url: str) -> tuple[int, str, str]:
        """Open the vendor's URL and follow it back: (status, page text, final URL)."""
        async with aiohttp.ClientSession() as session, session.get(url) as answer:
            return answer.status, await answer.text(), str(answer.url)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    clock = FakeClock(NOW)
    vendor = MokaFake(access_token=None, refresh_token=None, clock=clock)
    store = SqliteStore(tmp_path / "sambung.db", synchronous="OFF")
    await store.open()
    credentials = CredentialService(store, SecretBox.ephemeral(), clock=clock)
    resumed: list[tuple[str, str]] = []
    app = web.Application()
    runner = web.AppRunner(app)
    async with vendor.serve():
        # The callback listener's port is known once it listens; the YAML names it.
        holder: dict[str, OAuthCallback] = {}

        async def handle(request: web.Request) -> web.StreamResponse:
            return await holder["callback"].handle(request)

        app.router.add_get(CALLBACK.replace("moka", "{connector}"), handle)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        config = tmp_path / "sambung.yaml"
        config.write_text(
            "outlets:\n  - id: kemang\n    name: Kemang\n    connectors:\n"
            f"      moka: {{mode: poll, outlet_id: '41230', client_id: moka-client,"
            f" client_secret: moka-client-secret, base_url: '{vendor.url}',"
            f" redirect_uri: '{base}{CALLBACK}'}}\n"
            "      pawoon: {mode: webhook, webhook_secret: pawoon-secret}\n",
            encoding="utf-8",
        )
        loaded = load_config(config, load_plugins())
        holder["callback"] = OAuthCallback(
            credentials, loaded, clock, lambda o, c: resumed.append((o, c))
        )
        try:
            yield World(vendor, store, credentials, loaded, clock, base + CALLBACK, resumed)
        finally:
            await runner.cleanup()
            await store.close()


def reasons(logs: list[dict[str, Any]]) -> list[str]:
    return [e["reason"] for e in logs if e["event"] == "oauth.callback_refused"]


async def test_a_good_callback_stores_tokens_and_resumes_the_connection(world: World) -> None:
    status, page, final = await world.follow(await world.link())

    assert (status, final.split("?")[0]) == (200, world.callback_url)
    assert "Connected" in page
    assert world.resumed == [("kemang", "moka")]
    [info] = await world.store.list_credentials()
    assert (info.outlet, info.connector) == ("kemang", "moka")
    assert info.expires_at == NOW + timedelta(hours=1)


async def test_a_tampered_state_is_refused_and_nothing_is_stored(world: World) -> None:
    url = await world.link()
    query = parse_qs(urlsplit(url).query)
    state = query["state"][0]
    forged = state[:-1] + ("A" if state[-1] != "A" else "B")

    with structlog.testing.capture_logs() as logs:
        status, page, _ = await world.follow(
            f"{world.callback_url}?{urlencode({'code': 'x', 'state': forged})}"
        )

    assert status == 400 and "not issued by this sambung" in page
    assert reasons(logs) == ["unknown state (tampered or not issued here)"]
    assert await world.store.list_credentials() == [] and world.vendor.exchanges == 0


async def test_an_expired_state_is_refused(world: World) -> None:
    url = await world.link()
    world.clock.advance(601)

    with structlog.testing.capture_logs() as logs:
        status, page, _ = await world.follow(url)

    assert status == 400 and "expired" in page
    assert reasons(logs) == ["state expired"]
    assert await world.store.list_credentials() == [] and world.vendor.exchanges == 0


async def test_a_replayed_callback_is_refused(world: World) -> None:
    status, _, final = await world.follow(await world.link())
    assert status == 200
    await world.store.delete_credential("kemang", "moka")

    with structlog.testing.capture_logs() as logs:
        again, page, _ = await world.follow(final)

    assert again == 400 and "already used" in page
    assert reasons(logs) == ["state already used (replayed)"]
    assert await world.store.list_credentials() == [] and world.vendor.exchanges == 1


async def test_a_state_for_another_connector_is_refused(world: World) -> None:
    state = parse_qs(urlsplit(await world.link()).query)["state"][0]
    other = world.callback_url.replace("/moka/", "/pawoon/")

    status, _, _ = await world.follow(f"{other}?{urlencode({'code': 'x', 'state': state})}")

    assert status == 400 and await world.store.list_credentials() == []


async def test_denied_consent_answers_403(world: World) -> None:
    world.vendor.deny = True

    with structlog.testing.capture_logs() as logs:
        status, page, _ = await world.follow(await world.link())

    assert status == 403 and "not granted" in page
    assert reasons(logs) == ["consent denied"]
    assert await world.store.list_credentials() == []


async def test_a_vendor_error_on_the_code_exchange_answers_502(world: World) -> None:
    world.vendor.faults.fail(500, path="/oauth/token")

    with structlog.testing.capture_logs() as logs:
        status, page, _ = await world.follow(await world.link())

    assert status == 502 and "did not accept" in page
    assert reasons(logs)[0].startswith("code exchange failed: RetriableError")
    assert await world.store.list_credentials() == [] and world.resumed == []


async def test_a_missing_state_answers_400(world: World) -> None:
    status, page, _ = await world.follow(world.callback_url + "?code=x")

    assert status == 400 and "no state" in page


# -- refresh failures in the poll loop ----------------------------------------------------------


@pytest.fixture
async def polled(world: World) -> AsyncIterator[tuple[Any, list[ConnectionState]]]:
    """The Moka poll loop of `world`, connected, with the needs_reauth notifications."""
    told: list[ConnectionState] = []
    await world.follow(await world.link())
    world.vendor.seed(3, NOW - timedelta(minutes=30))
    service = PollService(
        world.loaded.connections,
        world.store,
        lambda _o, _k: (),
        clock=world.clock,
        sleep=world.clock.sleep,
        notify_reauth=told.append,
        credentials=world.credentials,
    )
    async with aiohttp.ClientSession() as session:
        [loop] = service.build(session)
        yield loop, told


async def test_invalid_grant_on_refresh_means_needs_reauth_and_one_notification(
    world: World, polled: tuple[Any, list[ConnectionState]]
) -> None:
    loop, told = polled
    world.vendor.expire_tokens()
    world.vendor.revoke_all()

    result = await loop.run_once()
    again = await loop.run_once()

    assert result.status is ConnectionStatus.NEEDS_REAUTH and again.skipped
    assert [(s.outlet, s.connector) for s in told] == [("kemang", "moka")]
    assert "invalid_grant" in (told[0].last_error or "")
    assert world.vendor.refresh_calls == 1

    await world.follow(await world.link())  # the merchant connects again
    loop.credentials_renewed()
    assert (await loop.run_once()).status is ConnectionStatus.OK


async def test_a_5xx_on_refresh_fails_the_run_without_needs_reauth(
    world: World, polled: tuple[Any, list[ConnectionState]]
) -> None:
    loop, told = polled
    world.vendor.expire_tokens()
    world.vendor.faults.fail(503, path="/oauth/token", times=100)

    result = await loop.run_once()

    assert result.status is ConnectionStatus.FAILING and told == []
    world.vendor.faults.pending.clear()
    world.clock.advance(300)
    recovered = await loop.run_once()
    assert recovered.status is ConnectionStatus.OK and recovered.records == 3
    assert world.vendor.refresh_calls == 1
