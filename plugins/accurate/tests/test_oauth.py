"""The accurate sink in OAuth mode: tokens from core's credential store, against the fake
Accurate (which is its own OAuth server, HTTP Basic client auth, as account.accurate.id is)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import structlog
from pydantic import SecretStr
from sambung.plugin import RetriableError, SinkDisconnected, Token, VendorHttp
from sambung.testing.accounting import SINK, AccountingRig, days_ago, sale
from sambung.testing.core import SINK_OUTLET, CredentialService, open_store
from sambung_accurate.client import OAuthAuth
from sambung_accurate.fake import FakeAccurate

CLIENT_ID, CLIENT_SECRET = "accurate-app", "accurate-app-secret"


def oauth_block(url: str, **extra: Any) -> dict[str, Any]:
    """An accurate sink in OAuth mode, every endpoint at the fake."""
    return {
        "type": "accurate",
        "auth": "oauth",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "account_url": url,
        "oauth_base_url": url,
        "post": "per_transaction",
        "default_item": "KOPI",
        "default_customer": "C-UMUM",
        **extra,
    }


@asynccontextmanager
async def running(
    tmp_path: Path, fake: FakeAccurate, *, connect: bool = True, **extra: Any
) -> AsyncIterator[AccountingRig]:
    """The fake and a rig around the sink; connected (tokens stored as after the callback)."""
    async with (
        fake.serve() as url,
        AccountingRig.start(tmp_path, oauth_block(url, **extra)) as rig,
    ):
        fake.clock = rig.clock  # tokens expire on the time the test sets
        if connect:
            await connect_now(rig, fake)
        yield rig


async def connect_now(rig: AccountingRig, fake: FakeAccurate) -> Token:
    """Store tokens the fake issued, as a finished connect flow does."""
    issued = fake.issue_token()
    token = Token(
        SecretStr(issued["access_token"]),
        rig.clock.now() + fake.token_ttl,
        SecretStr(issued["refresh_token"]),
    )
    await rig.dispatcher.credentials.connected(SINK_OUTLET, SINK, token)
    return token


def sales(count: int) -> list[Any]:
    return [
        sale(f"S-{n}", at=days_ago(1, 9), items=[("KOPI", "Es Kopi", 1, 18000)])
        for n in range(count)
    ]


def fake_accurate() -> FakeAccurate:
    return FakeAccurate(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)


async def test_the_stored_token_is_sent_as_the_bearer(tmp_path: Path) -> None:
    fake = fake_accurate()
    async with running(tmp_path, fake) as rig:
        await rig.ingest(*sales(2))
        assert await rig.drain() == 2

        stored = await rig.dispatcher.credentials.load(SINK_OUTLET, SINK)
        assert stored is not None
        access = stored.token.access_token.get_secret_value()
        assert len(fake.invoices) == 2
        assert fake.bearers and set(fake.bearers) == {access}
        assert fake.refresh_calls == 0
        assert await rig.dead_letters() == []


async def deliver_all(rig: AccountingRig, fake: FakeAccurate, invoices: int) -> None:
    """Drain until the fake holds `invoices` invoices. More than 8 calls at once can meet
    Accurate's 8-per-second limit when a busy machine holds some up and they arrive bunched:
    the sink answers such a 429 with a retry, which the rig's clock is moved to."""
    await rig.drain()
    for _ in range(5):
        if len(fake.invoices) >= invoices:
            return
        rig.clock.advance(10)
        await rig.drain()


async def test_an_expiring_token_is_refreshed_once_for_many_deliveries(tmp_path: Path) -> None:
    fake = fake_accurate()
    async with running(tmp_path, fake, concurrency=8) as rig:
        first = await connect_now(rig, fake)
        await rig.ingest(*sales(16))
        rig.clock.advance(fake.token_ttl.total_seconds() + 60)  # past the token's expiry

        await deliver_all(rig, fake, 16)

        assert fake.refresh_calls == 1
        assert len(fake.invoices) == 16
        # The rotated refresh token is what the store holds now, and the old one is dead.
        stored = await rig.dispatcher.credentials.load(SINK_OUTLET, SINK)
        assert stored is not None and stored.token.refresh_token is not None
        assert first.refresh_token is not None
        rotated = stored.token.refresh_token.get_secret_value()
        assert rotated in fake.refresh_tokens
        assert first.refresh_token.get_secret_value() not in fake.refresh_tokens
        assert fake.bearers[-1] == stored.token.access_token.get_secret_value()
        assert await rig.dead_letters() == []


async def test_a_token_accurate_refuses_early_is_refreshed_once(tmp_path: Path) -> None:
    fake = fake_accurate()
    async with running(tmp_path, fake, concurrency=8) as rig:
        await rig.ingest(*sales(4))
        assert await rig.drain() == 4
        fake.expire_tokens()  # Accurate revoked the access token before its expiry
        await rig.ingest(
            *(sale(f"T-{n}", at=days_ago(1, 11), items=[("KOPI", "K", 1, 9000)]) for n in range(8))
        )
        rig.clock.advance(5)  # the rig's clock past the store's (real) stamps of the new rows

        await deliver_all(rig, fake, 12)

        assert fake.refresh_calls == 1
        assert len(fake.invoices) == 12
        assert await rig.dead_letters() == []


async def test_an_expired_session_is_opened_again_with_the_same_token(tmp_path: Path) -> None:
    fake = fake_accurate()
    async with running(tmp_path, fake) as rig:
        await rig.ingest(*sales(1))
        await rig.drain()
        fake.expire_sessions()
        await rig.ingest(sale("S-9", at=days_ago(1, 10), items=[("KOPI", "Es Kopi", 1, 18000)]))
        rig.clock.advance(5)
        await rig.drain()

        assert rig.sink.client.sessions_opened == 2  # type: ignore[attr-defined]
        assert [r.path for r in fake.requests].count("/api/open-db.do") == 2
        assert fake.refresh_calls == 0 and len(fake.invoices) == 2


async def test_invalid_grant_pauses_the_sink_until_it_is_connected_again(tmp_path: Path) -> None:
    fake = fake_accurate()
    async with running(tmp_path, fake) as rig:
        told: list[tuple[str, str, str]] = []
        rig.dispatcher.notify_reauth = lambda *args: told.append(args)
        fake.revoke_all()  # the merchant disconnected sambung in Accurate
        rig.clock.advance(fake.token_ttl.total_seconds() + 60)
        await rig.ingest(*sales(3))

        with structlog.testing.capture_logs() as logs:
            await rig.drain()
            await rig.drain()  # paused: nothing is claimed, nothing is sent

        runtime = rig.dispatcher.sinks[SINK]
        assert runtime.paused_until is not None and runtime.paused_until > rig.clock.now()
        assert await rig.dead_letters() == []
        assert fake.invoices == {} and fake.refresh_calls == 1
        pending = await rig.store.list_outbox(sink=SINK)
        assert len(pending) == 3 and all(row.status == "pending" for row in pending)
        [paused] = [entry for entry in logs if entry["event"] == "sink.paused"]
        assert f"sambung connect --sink {SINK}" in paused["hint"]
        assert "invalid_grant" in paused["hint"]

        # Past the pause, the refused refresh token is not sent again (nor the hook told twice).
        rig.clock.advance(600)
        await rig.drain()
        assert fake.refresh_calls == 1 and fake.invoices == {}
        [(outlet, sink, error)] = told
        assert (outlet, sink) == ("*", SINK) and "invalid_grant" in error

        # Connected again (the callback stores tokens and resumes the sink): the rows go out.
        await connect_now(rig, fake)
        rig.dispatcher.reconnected(SINK)
        assert await rig.drain() == 3
        assert len(fake.invoices) == 3
        assert await rig.dead_letters() == []


async def test_a_sink_never_connected_waits_and_says_how_to_connect(tmp_path: Path) -> None:
    fake = fake_accurate()
    async with running(tmp_path, fake, connect=False) as rig:
        await rig.ingest(*sales(1))
        [item] = await rig.deliveries()
        [result] = await rig.sink.deliver([item])

        assert isinstance(result, SinkDisconnected)
        assert "not connected" in str(result) and "--sink books" in str(result)
        assert fake.requests == []


async def test_a_token_endpoint_down_is_retried_later(tmp_path: Path) -> None:
    fake = fake_accurate()
    async with running(tmp_path, fake) as rig:
        await rig.ingest(*sales(1))
        [item] = await rig.deliveries()
        rig.clock.advance(fake.token_ttl.total_seconds() + 60)
        fake.faults.fail(503, path="/oauth/token")

        [result] = await rig.sink.deliver([item])
        assert isinstance(result, RetriableError)
        assert rig.dispatcher.sinks[SINK].paused_until is None

        assert await rig.sink.deliver([item]) == [None]
        # The 503 was answered before the grant was looked at: one refresh grant in all.
        assert fake.refresh_calls == 1 and len(fake.invoices) == 1


async def test_replicas_sharing_a_store_refresh_once(
    tmp_path: Path, sambung_store_url: str
) -> None:
    """Three daemons' sinks on one database, each with its own token cache, eight callers each:
    the store's lease lets one refresh and the others use what it stored."""
    fake = fake_accurate()
    async with (
        fake.serve() as url,
        AccountingRig.start(tmp_path, oauth_block(url), store_url=sambung_store_url) as rig,
        contextlib.AsyncExitStack() as stack,
    ):
        fake.clock = rig.clock
        first = await connect_now(rig, fake)
        settings = rig.loaded.sink_settings[SINK]
        auths = []
        for _ in range(3):
            store = open_store(sambung_store_url, base_dir=tmp_path)
            await store.open()
            stack.push_async_callback(store.close)
            service = CredentialService(store, rig.dispatcher.credentials.box, clock=rig.clock)
            session = await stack.enter_async_context(aiohttp.ClientSession())
            http = VendorHttp(session, clock=rig.clock, tokens=service.tokens)
            spec = settings.oauth_endpoints()
            credentials = service.for_sink(SINK, settings, spec, http, rig.sink.log)
            auths.append(OAuthAuth(credentials, rig.clock))
        rig.clock.advance(fake.token_ttl.total_seconds() + 60)

        headers = await asyncio.gather(*(auth.headers() for auth in auths for _ in range(8)))

        assert fake.refresh_calls == 1
        assert len({h["Authorization"] for h in headers}) == 1
        assert headers[0]["Authorization"] != f"Bearer {first.access_token.get_secret_value()}"
