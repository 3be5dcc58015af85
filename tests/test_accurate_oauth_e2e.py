"""The accurate sink connected through OAuth, end to end: the daemon as a real process.

Connect the sink through the admin endpoint, follow Accurate's (fake) authorize redirect to the
daemon's callback, then a POS sale reaches the fake Accurate as an invoice posted with the OAuth
bearer token; the database file holds no token in clear, and `sambung credentials list` shows
the sink's credential under the outlet "*".
"""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
from sambung.testing.daemon import DaemonProcess, free_port
from sambung_accurate.fake import FakeAccurate

from .payloads import PAWOON_SECRET, WEBHOOKS, pawoon_sale, signed
from .test_accounting_e2e import until

ADMIN_TOKEN = "admin-token-for-the-accurate-oauth-e2e"
CLIENT_ID, CLIENT_SECRET = "accurate-e2e-app", "accurate-e2e-app-secret"
CALLBACK = "/api/v1/integrations/oauth/books/callback"


def accurate_oauth_config(account_url: str, **books: object) -> dict[str, object]:
    """One outlet taking Pawoon webhooks, and an OAuth `accurate` sink `books` at `account_url`."""
    return {
        "outlets": [
            {
                "id": "kemang",
                "name": "Kopi Senja Kemang",
                "connectors": {"pawoon": {"mode": "webhook", "webhook_secret": PAWOON_SECRET}},
            }
        ],
        "sinks": {
            "books": {
                "type": "accurate",
                "auth": "oauth",
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "account_url": account_url,
                "oauth_base_url": account_url,
                "post": "per_transaction",
                "default_item": "100-PENJUALAN",
                "default_customer": "C-UMUM",
                **books,
            }
        },
    }


async def test_connect_the_accurate_sink_and_post_an_invoice_with_the_bearer(
    tmp_path: Path,
) -> None:
    fake = FakeAccurate(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    async with fake.serve() as url:
        admin_port = free_port()
        config = accurate_oauth_config(
            url,
            charge_items={"tax": "210-PPN"},
            retry_schedule=[0, 1, 1, 1, 1, 1, 1, 1],
        )
        config["server"] = {
            "admin": {"host": "127.0.0.1", "port": admin_port, "token": ADMIN_TOKEN}
        }
        daemon = DaemonProcess(
            tmp_path, config, env={"SAMBUNG_SECRET_KEY": secrets.token_urlsafe(32)}
        )
        await asyncio.to_thread(daemon.start)
        try:
            admin = f"http://127.0.0.1:{admin_port}"
            auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            async with aiohttp.ClientSession() as session:
                async with session.post(
                    f"{admin}/api/v1/sinks/nothing/connect", headers=auth
                ) as unknown:
                    assert unknown.status == 404
                async with session.post(
                    f"{admin}/api/v1/sinks/books/connect", headers=auth
                ) as answer:
                    assert answer.status == 200, await answer.text()
                    link = await answer.json()
                assert link["outlet"] == "*" and link["connector"] == "books"
                authorize = link["authorization_url"]
                assert authorize.startswith(f"{url}/oauth/authorize?")
                query = parse_qs(urlsplit(authorize).query)
                assert query["redirect_uri"] == [daemon.url + CALLBACK]
                assert query["scope"] == ["sales_invoice_save sales_invoice_view"]
                assert query["client_id"] == [CLIENT_ID]
                # Accurate's consent screen sends the merchant back to the daemon's callback.
                async with session.get(authorize) as page:
                    text = await page.text()
                    assert page.status == 200, text
                    assert "Connected" in text and "books" in text
                    assert str(page.url).startswith(daemon.url + CALLBACK)
            assert fake.exchanges == 1

            body = pawoon_sale("TRX-1")
            headers = signed(body, PAWOON_SECRET, "X-Webhook-Signature")
            status, _ = await asyncio.to_thread(
                daemon.post, f"{WEBHOOKS}/pawoon/kemang", body, headers
            )
            assert status == 200
            await until(lambda: len(fake.invoices) == 1, "the sale's invoice at Accurate")
            [invoice] = fake.invoices.values()
            assert invoice.fields["customerNo"] == "C-UMUM"
            # Posted with the OAuth access token the callback obtained, and nothing else.
            assert fake.bearers and set(fake.bearers) <= set(fake.tokens)
            issued = set(fake.tokens) | set(fake.refresh_tokens)
        finally:
            await asyncio.to_thread(daemon.terminate)

    listed = daemon.cli("credentials", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    [row] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert {"outlet": "*", "connector": "books", "kind": "oauth2"}.items() <= row.items()
    database = b"".join(p.read_bytes() for p in daemon.workdir.glob("sambung.db*"))
    assert issued
    for token in issued:
        assert token.encode() not in database, "a token is in the database file in clear"
        assert token not in listed.stdout
        assert token not in daemon.logs()
    assert CLIENT_SECRET not in daemon.logs()


def test_sambung_connect_sink_prints_a_link(tmp_path: Path) -> None:
    config = {
        "outlets": [{"id": "kemang", "name": "Kemang"}],
        "sinks": {
            "books": {
                "type": "accurate",
                "auth": "oauth",
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "oauth_base_url": "http://127.0.0.1:9",
                "default_item": "100-PENJUALAN",
                "default_customer": "C-UMUM",
            },
            "files": {"type": "jsonl", "path": "out.jsonl"},
        },
    }
    daemon = DaemonProcess(tmp_path, config, env={"SAMBUNG_SECRET_KEY": secrets.token_urlsafe(32)})

    printed = daemon.cli("connect", "--sink", "books")
    as_json = daemon.cli("connect", "--sink", "books", "--json")
    not_oauth = daemon.cli("connect", "--sink", "files")
    both = daemon.cli("connect", "kemang", "pawoon", "--sink", "books")

    assert printed.returncode == 0, printed.stderr
    assert "connect sink books" in printed.stdout
    assert "http://127.0.0.1:9/oauth/authorize?" in printed.stdout
    link = json.loads(as_json.stdout)
    assert link["redirect_uri"] == daemon.url + CALLBACK and link["outlet"] == "*"
    assert not_oauth.returncode == 2 and "does not connect through OAuth" in not_oauth.stderr
    assert both.returncode == 2


def test_the_simulator_connects_a_demo_oauth_sink_by_itself(tmp_path: Path) -> None:
    import time

    account = f"http://127.0.0.1:{free_port()}"
    # Every charge the simulated sales carry has an item, so each sale becomes an invoice (not
    # only those that happen to need no rounding, which kept the wait up to chance).
    charges = {"tax": "210-PPN", "service_charge": "400-SERVICE", "rounding": "800-PEMBULATAN"}
    config = accurate_oauth_config(account, charge_items=charges)
    daemon = DaemonProcess(tmp_path, config, args=("--simulate",)).start()
    try:
        deadline = time.monotonic() + 60
        while '"event": "accurate.invoice_saved"' not in daemon.logs():
            assert time.monotonic() < deadline, daemon.logs()[-3000:]
            time.sleep(0.5)
    finally:
        daemon.terminate()
    listed = daemon.cli("credentials", "list")
    assert "books" in listed.stdout and "oauth2" in listed.stdout
    assert '"event": "simulator.connected_oauth"' in daemon.logs()
