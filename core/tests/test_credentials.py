"""The credential store: the key, encryption at rest, the store's tables, and refresh.

Refresh runs against core's fake authorization server: fifty callers with an expired token
cause one refresh; a rotated refresh token is stored before the new access token is handed out;
`invalid_grant` is an `AuthError` sent once; a 5xx is a `RetriableError` and a later call works.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from pydantic import SecretStr
from sambung.auth.credentials import (
    KEY_ENV,
    ConnectionCredentials,
    CredentialService,
    SecretBox,
    load_key,
)
from sambung.auth.oauth import (
    OAuthSpec,
)
from sambung.auth.tokens import Token
from sambung.connectors import (
    ConnectorContext,
    OAuthSettings,
    PollConnector,
    PollSettings,
    PollWindow,
)
from sambung.errors import AuthError, ConfigError, CredentialsUnreadable, RetriableError
from sambung.http import VendorHttp
from sambung.store import OAuthState, Store, StoredCredential, open_store
from sambung.testing import outlet
from sambung.testing.fake_vendor import FakeClock
from sambung.testing.oauth_server import FakeAuthorizationServer

NOW = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)

# -- the key ----------------------------------------------------------------------------------


def test_a_key_file_is_created_owner_only_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "data" / "secret.key"

    key = load_key(path, {})

    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key(path, {}) == key


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    load_key(path, {})
    os.chmod(path, 0o644)

    with pytest.raises(ConfigError) as raised:
        load_key(path, {})

    assert "mode 0644" in str(raised.value) and "chmod 600" in str(raised.value)


def test_the_environment_key_wins_and_must_be_32_bytes(tmp_path: Path) -> None:
    import secrets

    text = secrets.token_urlsafe(32)
    assert len(load_key(tmp_path / "k", {KEY_ENV: text})) == 32
    assert not (tmp_path / "k").exists()
    with pytest.raises(ConfigError, match=KEY_ENV):
        load_key(tmp_path / "k", {KEY_ENV: "too-short"})


def test_a_sealed_secret_opens_only_with_its_key_and_context() -> None:
    box, other = SecretBox.ephemeral(), SecretBox.ephemeral()
    blob = box.seal(b"moka-access-token", "kemang/moka")

    assert b"moka-access-token" not in blob
    assert box.open(blob, "kemang/moka") == b"moka-access-token"
    with pytest.raises(CredentialsUnreadable):
        box.open(blob, "blok-m/moka")  # a row copied onto another connection
    with pytest.raises(CredentialsUnreadable):
        other.open(blob, "kemang/moka")


# -- the store's tables -----------------------------------------------------------------------


async def test_credentials_are_saved_listed_without_secret_and_deleted(store: Store) -> None:
    blob = SecretBox.ephemeral().seal(b"{}", "kemang/moka")
    await store.save_credential(
        StoredCredential("kemang", "moka", "oauth2", blob, NOW + timedelta(hours=1), NOW)
    )
    await store.save_credential(StoredCredential("kemang", "moka", "oauth2", blob, None, NOW))

    stored = await store.get_credential("kemang", "moka")
    [info] = await store.list_credentials()

    assert stored is not None and stored.secret == blob and stored.expires_at is None
    assert (info.outlet, info.connector, info.kind, info.expires_at) == (
        "kemang",
        "moka",
        "oauth2",
        None,
    )
    assert not hasattr(info, "secret")
    assert await store.delete_credential("kemang", "moka")
    assert not await store.delete_credential("kemang", "moka")
    assert await store.get_credential("kemang", "moka") is None


async def test_an_oauth_state_is_consumed_once(store: Store) -> None:
    state = OAuthState(
        "h" * 64, "kemang", "moka", "http://x/cb", b"v", NOW, NOW + timedelta(minutes=10)
    )
    await store.create_oauth_state(state)

    uses = await asyncio.gather(
        *(store.consume_oauth_state("h" * 64, now=NOW + timedelta(minutes=1)) for _ in range(10))
    )

    assert all(use is not None for use in uses)
    first = [use for use in uses if use is not None and use.consumed_at is None]
    assert len(first) == 1, "exactly one caller gets the unused state"
    assert first[0].secret == b"v" and first[0].outlet == "kemang"
    assert await store.consume_oauth_state("unknown", now=NOW) is None


# -- refresh ----------------------------------------------------------------------------------


class OAuthPoll(PollConnector):
    """A minimal OAuth poll connector for these tests."""

    name = "oauthpoll"
    oauth = OAuthSpec(
        "https://vendor.invalid/oauth/authorize", "https://vendor.invalid/oauth/token"
    )

    class Settings(PollSettings, OAuthSettings):
        """Its YAML block."""

    async def poll(self, window: PollWindow) -> AsyncIterator[Any]:  # pragma: no cover
        yield None


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
async def server(clock: FakeClock) -> AsyncIterator[FakeAuthorizationServer]:
    fake = FakeAuthorizationServer(clock=clock)
    async with fake.serve():
        yield fake


@pytest.fixture
async def service(store: Store, clock: FakeClock) -> CredentialService:
    return CredentialService(store, SecretBox.ephemeral(), clock=clock)


@pytest.fixture
async def credentials(
    service: CredentialService, server: FakeAuthorizationServer, clock: FakeClock
) -> AsyncIterator[ConnectionCredentials]:
    async with aiohttp.ClientSession() as session:
        http = VendorHttp(session, clock=clock, tokens=service.tokens)
        yield service.for_connector(oauth_poll(server, clock), http)


def oauth_poll(server: FakeAuthorizationServer, clock: FakeClock) -> OAuthPoll:
    """The test connector, set up to use the fake authorization server."""
    settings = OAuthPoll.Settings.model_validate(
        {
            "mode": "poll",
            "client_id": server.client_id,
            "client_secret": server.client_secret,
            "oauth_base_url": server.url,
        }
    )
    context = ConnectorContext(
        outlet=outlet(), settings=settings, log=structlog.get_logger(), clock=clock
    )
    return OAuthPoll(context)


async def connected(
    service: CredentialService, server: FakeAuthorizationServer, *, expires_in: float
) -> Token:
    """Store tokens the fake issued, expiring in `expires_in` seconds."""
    issued = server.issue_token()
    token = Token(
        SecretStr(issued["access_token"]),
        server.clock.now() + timedelta(seconds=expires_in),
        SecretStr(issued["refresh_token"]),
    )
    await service.connected("kemang", "oauthpoll", token)
    return token


async def test_fifty_callers_with_an_expired_token_cause_one_refresh(
    service: CredentialService,
    server: FakeAuthorizationServer,
    credentials: ConnectionCredentials,
) -> None:
    old = await connected(service, server, expires_in=-5)

    tokens = await asyncio.gather(*(credentials.token() for _ in range(50)))

    assert server.refresh_calls == 1
    assert len({t.access_token.get_secret_value() for t in tokens}) == 1
    assert tokens[0].access_token.get_secret_value() != old.access_token.get_secret_value()


async def test_replicas_sharing_a_store_refresh_an_expired_token_once(
    sambung_store_url: str,
    tmp_path: Path,
    server: FakeAuthorizationServer,
    clock: FakeClock,
) -> None:
    """Three daemons on one database, each with its own token cache, 20 callers each."""
    box = SecretBox.ephemeral()  # the replicas share the key, as they share the key file
    stores = [open_store(sambung_store_url, base_dir=tmp_path) for _ in range(3)]
    async with contextlib.AsyncExitStack() as stack:
        replicas = []
        for store in stores:
            await store.open()
            stack.push_async_callback(store.close)
            service = CredentialService(store, box, clock=clock)
            session = await stack.enter_async_context(aiohttp.ClientSession())
            http = VendorHttp(session, clock=clock, tokens=service.tokens)
            replicas.append(service.for_connector(oauth_poll(server, clock), http))
        old = await connected(replicas[0].service, server, expires_in=-5)

        tokens = await asyncio.gather(*(r.token() for r in replicas for _ in range(20)))

    assert server.refresh_calls == 1
    assert len({t.access_token.get_secret_value() for t in tokens}) == 1
    assert tokens[0].access_token.get_secret_value() != old.access_token.get_secret_value()


async def test_fifty_callers_refused_with_one_token_cause_one_refresh(
    service: CredentialService,
    server: FakeAuthorizationServer,
    credentials: ConnectionCredentials,
) -> None:
    await connected(service, server, expires_in=3600)
    first = await credentials.token()
    assert server.refresh_calls == 0

    async def refused_then_retry() -> Token:
        await credentials.invalidate(first)  # each caller's request got a 401
        return await credentials.token()

    again = await asyncio.gather(*(refused_then_retry() for _ in range(50)))

    assert server.refresh_calls == 1
    assert {t.access_token.get_secret_value() for t in again} != {
        first.access_token.get_secret_value()
    }


async def test_a_token_is_refreshed_shortly_before_it_expires(
    service: CredentialService,
    server: FakeAuthorizationServer,
    credentials: ConnectionCredentials,
    clock: FakeClock,
) -> None:
    await connected(service, server, expires_in=3600)
    await credentials.token()
    clock.advance(3600 - 30)  # inside the early-refresh margin, not yet expired

    await credentials.token()

    assert server.refresh_calls == 1


async def test_the_rotated_refresh_token_is_stored_before_the_access_token_is_used(
    service: CredentialService,
    server: FakeAuthorizationServer,
    credentials: ConnectionCredentials,
    store: Store,
) -> None:
    old = await connected(service, server, expires_in=-5)

    fresh = await credentials.token()
    stored = await service.load("kemang", "oauthpoll")
    raw = await store.get_credential("kemang", "oauthpoll")

    assert stored is not None and fresh.refresh_token is not None
    assert old.refresh_token is not None
    rotated = fresh.refresh_token.get_secret_value()
    assert rotated != old.refresh_token.get_secret_value()
    assert stored.token.refresh_token == fresh.refresh_token
    assert stored.token.access_token == fresh.access_token
    assert raw is not None and rotated.encode() not in raw.secret


async def test_invalid_grant_is_an_auth_error_sent_once(
    service: CredentialService,
    server: FakeAuthorizationServer,
    credentials: ConnectionCredentials,
) -> None:
    await connected(service, server, expires_in=-5)
    server.revoke_all()

    with pytest.raises(AuthError, match="invalid_grant"):
        await credentials.token()
    await credentials.forget()
    with pytest.raises(AuthError):
        await credentials.token()

    assert server.refresh_calls == 1, "a refused refresh token is not sent again"


async def test_a_5xx_on_refresh_is_retriable_and_a_later_call_refreshes(
    service: CredentialService,
    server: FakeAuthorizationServer,
    credentials: ConnectionCredentials,
) -> None:
    await connected(service, server, expires_in=-5)
    server.faults.fail(503, path="/oauth/token")

    with pytest.raises(RetriableError):
        await credentials.token()
    token = await credentials.token()

    assert server.refresh_calls == 1  # the 503 was injected before the handler counted it
    assert token.expires_at is not None and token.expires_at > server.clock.now()


async def test_not_connected_is_an_auth_error_naming_the_command(
    credentials: ConnectionCredentials,
) -> None:
    with pytest.raises(AuthError, match="sambung connect kemang oauthpoll"):
        await credentials.token()


async def test_yaml_tokens_seed_the_store_once_and_stored_ones_win(
    service: CredentialService, server: FakeAuthorizationServer, clock: FakeClock
) -> None:
    import structlog

    settings = OAuthPoll.Settings.model_validate(
        {
            "mode": "poll",
            "client_id": server.client_id,
            "client_secret": server.client_secret,
            "oauth_base_url": server.url,
            "access_token": "seeded-access-token",
            "refresh_token": "seeded-refresh-token",
        }
    )
    context = ConnectorContext(
        outlet=outlet(), settings=settings, log=structlog.get_logger(), clock=clock
    )
    server.refresh_tokens.add("seeded-refresh-token")
    async with aiohttp.ClientSession() as session:
        http = VendorHttp(session, clock=clock, tokens=service.tokens)
        credentials = service.for_connector(OAuthPoll(context), http)
        seeded = await credentials.token()
        await credentials.invalidate(seeded)
        refreshed = await credentials.token()

    stored = await service.load("kemang", "oauthpoll")
    assert seeded.access_token.get_secret_value() == "seeded-access-token"
    assert stored is not None and stored.token.access_token == refreshed.access_token
    assert refreshed.access_token.get_secret_value() != "seeded-access-token"


def test_the_daemon_refuses_a_loose_key_file_naming_it(tmp_path: Path) -> None:
    from sambung.config import load_config
    from sambung.plugins import load_plugins
    from sambung.runtime.daemon import Daemon

    config = tmp_path / "sambung.yaml"
    config.write_text(
        "store: {url: 'sqlite:///./db/sambung.db'}\noutlets: [{id: kemang, name: Kemang}]\n",
        encoding="utf-8",
    )
    registry = load_plugins()
    Daemon(load_config(config, registry), registry)  # creates db/secret.key, owner only
    key_file = tmp_path / "db" / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    os.chmod(key_file, 0o640)

    with pytest.raises(ConfigError) as raised:
        Daemon(load_config(config, registry), registry)

    assert str(key_file) in str(raised.value) and "chmod 600" in str(raised.value)


async def test_pkce_and_basic_client_auth_against_the_fake(clock: FakeClock) -> None:
    from sambung.auth.oauth import TokenEndpoint, authorization_url, new_verifier
    from sambung.errors import InvalidGrant

    server = FakeAuthorizationServer(clock=clock, client_auth="basic", require_pkce=True)
    spec = OAuthSpec("/oauth/authorize", "/oauth/token", pkce=True, client_auth="basic")
    redirect = "http://127.0.0.1:9/callback"
    async with server.serve(), aiohttp.ClientSession() as session:
        spec = spec.at(server.url)

        async def code_for(verifier: str) -> str:
            url = authorization_url(
                spec,
                client_id=server.client_id,
                redirect_uri=redirect,
                state="s",
                verifier=verifier,
            )
            async with session.get(url, allow_redirects=False) as answer:
                assert answer.status == 302
                location = answer.headers["Location"]
            assert location.startswith(redirect + "?")
            return location.split("code=")[1].split("&")[0]

        http = VendorHttp(session, clock=clock)
        endpoint = TokenEndpoint(http, spec, server.client_id, SecretStr(server.client_secret))
        verifier = new_verifier()
        with pytest.raises(InvalidGrant):
            await endpoint.exchange(await code_for(verifier), redirect, new_verifier())
        token = await endpoint.exchange(await code_for(verifier), redirect, verifier)
        wrong = TokenEndpoint(http, spec, server.client_id, SecretStr("not-the-secret"))
        with pytest.raises(AuthError, match="invalid_client"):
            await wrong.exchange(await code_for(verifier), redirect, verifier)

    assert token.refresh_token is not None and token.expires_at == NOW + timedelta(hours=1)
    assert (server.token_calls, server.exchanges) == (3, 2)  # invalid_client: no exchange


async def test_the_reconnect_hint_is_a_command_to_paste_with_its_config(
    store: Store, server: FakeAuthorizationServer, clock: FakeClock
) -> None:
    config = Path("/etc/sambung/sambung.yaml")
    service = CredentialService(store, SecretBox.ephemeral(), clock=clock, config_path=config)
    connector = oauth_poll(server, clock)
    async with aiohttp.ClientSession() as session:
        http = VendorHttp(session, clock=clock, tokens=service.tokens)
        credentials = service.for_connector(connector, http)
    expected = f"sambung connect -c {config} {connector.outlet.id} {connector.name}"
    assert credentials.reconnect == expected
