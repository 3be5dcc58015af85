"""The OAuth connect flow end to end: the daemon as a real process, Moka faked locally.

Connect through the admin endpoint, follow the vendor's authorize redirect back to the daemon's
callback, and watch the Moka poller use the stored token; the database file never holds a token
in clear; an expired token is refreshed, and after a restart the daemon uses the rotated
refresh token. `sambung connect` prints a link, and `sambung credentials list` shows names and
expiry, never a value.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
from sambung.store.sqlite import SqliteStore
from sambung.testing.daemon import DaemonProcess, free_port
from sambung_moka.fake import MokaFake

ADMIN_TOKEN = "admin-token-for-the-oauth-e2e"
CALLBACK = "/api/v1/integrations/oauth/moka/callback"


def moka_config(vendor_url: str, admin_port: int) -> dict[str, Any]:
    """A daemon polling Moka at kemang, not connected yet, with an admin listener."""
    return {
        "server": {"admin": {"host": "127.0.0.1", "port": admin_port, "token": ADMIN_TOKEN}},
        "outlets": [
            {
                "id": "kemang",
                "name": "Kemang",
                "connectors": {
                    "moka": {
                        "mode": "poll",
                        "outlet_id": "41230",
                        "client_id": "moka-client",
                        "client_secret": "moka-client-secret",
                        "base_url": vendor_url,
                        "interval": "15s",
                    }
                },
            }
        ],
    }


async def served(vendor: MokaFake, after: int, timeout: float = 60.0) -> None:
    """Wait until the fake answered more than `after` data requests with 200."""
    deadline = asyncio.get_running_loop().time() + timeout
    while _ok(vendor) <= after:
        assert asyncio.get_running_loop().time() < deadline, vendor.requests[-5:]
        await asyncio.sleep(0.1)


async def expire_and_restart(vendor: MokaFake, daemon: DaemonProcess) -> None:
    """Expire every token at the vendor, restart the daemon, wait for its next good poll."""
    vendor.expire_tokens()
    await asyncio.to_thread(daemon.terminate)
    before = _ok(vendor)
    await asyncio.to_thread(daemon.start)
    await served(vendor, before)


def _ok(vendor: MokaFake) -> int:
    return sum(1 for r in vendor.data_requests() if r.status == 200)


async def test_connect_callback_poll_refresh_rotate_and_restart(tmp_path: Path) -> None:
    vendor = MokaFake(access_token=None, refresh_token=None)
    vendor.seed(3, datetime.now(UTC) - timedelta(minutes=30))
    async with vendor.serve():
        daemon = DaemonProcess(
            tmp_path,
            moka_config(vendor.url, admin_port := free_port()),
            env={"SAMBUNG_SECRET_KEY": secrets.token_urlsafe(32)},
        )
        await asyncio.to_thread(daemon.start)
        try:
            admin = f"http://127.0.0.1:{admin_port}"
            auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            async with aiohttp.ClientSession() as session:
                connect = f"{admin}/api/v1/connections/kemang/moka/connect"
                async with session.post(connect) as unauthorised:
                    assert unauthorised.status == 401
                async with session.post(
                    f"{admin}/api/v1/connections/kemang/nothing/connect", headers=auth
                ) as unknown:
                    assert unknown.status == 404
                async with session.post(connect, headers=auth) as answer:
                    assert answer.status == 200
                    link = await answer.json()
                url = link["authorization_url"]
                assert url.startswith(f"{vendor.url}/oauth/authorize?")
                query = parse_qs(urlsplit(url).query)
                assert query["redirect_uri"] == [daemon.url + CALLBACK]
                assert query["client_id"] == ["moka-client"] and query["state"][0]
                # The vendor's consent screen redirects back to the daemon's callback.
                async with session.get(url) as page:
                    assert page.status == 200, await page.text()
                    assert "Connected" in await page.text()
                    assert str(page.url).startswith(daemon.url + CALLBACK)

            await served(vendor, 0)  # the loop resumed at once, with the stored token
            first_access = vendor.bearers[-1]
            assert first_access in vendor.tokens and vendor.exchanges == 1
            issued = set(vendor.tokens) | set(vendor.refresh_tokens)

            # Tokens expire at the vendor: the next run gets 401, refreshes once, and the rotated
            # refresh token is stored. A restart makes that next run happen now.
            await expire_and_restart(vendor, daemon)
            assert vendor.refresh_calls == 1
            assert vendor.bearers[-1] != first_access
            issued |= set(vendor.tokens) | set(vendor.refresh_tokens)

            # Again: if the daemon had kept the old refresh token, this refresh would be refused
            # (invalid_grant) and the connection would wait for reauthorisation.
            await expire_and_restart(vendor, daemon)
            assert vendor.refresh_calls == 2
            issued |= set(vendor.tokens) | set(vendor.refresh_tokens)
        finally:
            await asyncio.to_thread(daemon.terminate)

    listed = daemon.cli("credentials", "list")
    status = daemon.cli("status", "--json")
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split() == ["OUTLET", "CONNECTOR", "KIND", "EXPIRES", "UPDATED"]
    assert row.split()[:2] == ["kemang", "moka"] and row.split()[3].startswith("20")
    polled = [json.loads(line) for line in status.stdout.splitlines()]
    assert {"connector": "moka", "mode": ["poll"], "state": "ok"}.items() <= polled[0].items()

    stored = SqliteStore(daemon.workdir / "sambung.db")
    await stored.open()
    try:
        assert len(await stored.list_records(source_system="moka")) == 3
    finally:
        await stored.close()
    database = b"".join(p.read_bytes() for p in daemon.workdir.glob("sambung.db*"))
    for token in issued:
        assert token.encode() not in database, "a token is in the database file in clear"
        assert token not in listed.stdout + status.stdout
        assert token not in daemon.logs()


def test_sambung_connect_prints_a_single_use_link(tmp_path: Path) -> None:
    daemon = DaemonProcess(
        tmp_path,
        moka_config("http://127.0.0.1:9", free_port()),
        env={"SAMBUNG_SECRET_KEY": secrets.token_urlsafe(32)},
    )

    first = daemon.cli("connect", "kemang", "moka", "--json")
    second = daemon.cli("connect", "kemang", "moka")

    assert first.returncode == 0, first.stderr
    link = json.loads(first.stdout)
    state = parse_qs(urlsplit(link["authorization_url"]).query)["state"][0]
    assert link["authorization_url"].startswith("http://127.0.0.1:9/oauth/authorize?")
    assert link["redirect_uri"] == daemon.url + CALLBACK
    assert state not in second.stdout, "every link has its own state"
    assert "It works once" in second.stdout
    not_oauth = daemon.cli("connect", "kemang", "pawoon")
    assert not_oauth.returncode == 2 and "no 'pawoon' connector" in not_oauth.stderr


def test_the_simulator_connects_a_demo_oauth_connection_by_itself(tmp_path: Path) -> None:
    import time

    vendor_port = free_port()
    config = moka_config(f"http://127.0.0.1:{vendor_port}", free_port())
    daemon = DaemonProcess(tmp_path, config, args=("--simulate",)).start()
    try:
        deadline = time.monotonic() + 60
        while True:
            status = daemon.cli("status", "--json")
            states = [json.loads(line) for line in status.stdout.splitlines()]
            if any(
                s.get("state") == "ok" and (s.get("poll") or {}).get("records_fetched", 0) > 0
                for s in states
            ):
                break
            assert time.monotonic() < deadline, (status.stdout, daemon.logs())
            time.sleep(0.5)
    finally:
        daemon.terminate()
    listed = daemon.cli("credentials", "list")
    assert "kemang" in listed.stdout and "oauth2" in listed.stdout
    assert '"event": "simulator.connected_oauth"' in daemon.logs()
    assert (tmp_path / "secret.key").stat().st_mode & 0o077 == 0
