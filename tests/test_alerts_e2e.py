"""Alerts and the webhook gap report with the daemon as a real process, on SQLite and on
PostgreSQL: a condition fires exactly once on every channel while it persists across three
checks, recovers exactly once when it is fixed, and no message carries a secret."""

from __future__ import annotations

import base64
import json
import signal
import threading
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope
from sambung.testing.daemon import DaemonProcess, HttpClient, free_port
from sambung.testing.receiver import Receiver
from sambung.testing.telegram import FakeTelegram
from sambung_qasir.fake import QasirFake
from sambung_xendit.fake import XenditFake, invoice_id
from standardwebhooks.webhooks import Webhook

from .payloads import WEBHOOKS
from .waiting import until

StartDaemon = Callable[..., DaemonProcess]
BOT_TOKEN = "424242:e2e-telegram-bot-token"
WHSEC = "whsec_" + base64.b64encode(b"e2e-alert-webhook-secret-32byte!").decode()
ADMIN_TOKEN = "e2e-admin-token-0123456789"
QASIR_KEY, WRONG_KEY = "qasir-alerts-key", "qasir-revoked-key"
XENDIT_KEY, XENDIT_TOKEN = "xnd_development_alerts", "xendit-alerts-callback-token"
SECRETS = (BOT_TOKEN, WHSEC, ADMIN_TOKEN, QASIR_KEY, WRONG_KEY, XENDIT_KEY, XENDIT_TOKEN)


class Mailbox:
    """A real SMTP server on localhost (aiosmtpd), keeping every mail it accepted."""

    def __init__(self) -> None:
        self.port = free_port()
        self.mails: list[Envelope] = []
        self._lock = threading.Lock()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        with self._lock:
            self.mails.append(envelope)
        return "250 OK"

    def texts(self) -> list[str]:
        with self._lock:
            return [bytes(m.content or b"").decode() for m in self.mails]

    def __enter__(self) -> Mailbox:
        self._controller.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._controller.stop()


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    fake = FakeTelegram(BOT_TOKEN)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    verifier = Webhook(WHSEC)
    found = Receiver(WHSEC, verify=lambda body, headers: verifier.verify(body, dict(headers)))
    await found.start()
    yield found
    await found.stop()


def base_config(store_url: str, channels: dict[str, Any], **alerts: Any) -> dict[str, Any]:
    return {
        "store": {"url": store_url},
        "log": {"level": "debug", "format": "json"},
        "server": {"admin": {"port": free_port(), "token": ADMIN_TOKEN}},
        "sinks": {"archive": {"type": "jsonl", "path": "./records.jsonl"}},
        "alerts": {"check_interval": "0.2s", "channels": channels, **alerts},
    }


def checks(daemon: DaemonProcess) -> int:
    """How many alert checks the daemon has completed (its debug log says so each time)."""
    return daemon.logs().count('"alerts.checked"')


async def three_more_checks(daemon: DaemonProcess) -> None:
    seen = checks(daemon)

    async def done() -> bool:
        return checks(daemon) >= seen + 3

    await until(done)


def admin_get(daemon: DaemonProcess, path: str) -> Any:
    config = yaml.safe_load(daemon.config_path.read_text(encoding="utf-8"))
    port = config["server"]["admin"]["port"]
    status, body = HttpClient(f"http://127.0.0.1:{port}").get(
        path, {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert status == 200, body
    return body


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


async def test_needs_reauth_fires_once_on_every_channel_and_recovers_once(
    sambung_daemon: StartDaemon,
    sambung_store_url: str,
    telegram: FakeTelegram,
    receiver: Receiver,
) -> None:
    vendor = QasirFake(api_key=QASIR_KEY)
    vendor.seed(3, datetime.now(UTC) - timedelta(hours=1))
    with Mailbox() as mailbox:
        channels = {
            "phone": {
                "type": "telegram",
                "bot_token": "${ALERT_BOT_TOKEN}",
                "chat_id": "-1001",
                "base_url": telegram.url,
            },
            "ops": {"type": "webhook", "url": receiver.url, "secret": "${ALERT_WHSEC}"},
            "mail": {
                "type": "email",
                "host": "127.0.0.1",
                "port": mailbox.port,
                "security": "none",
                "from": "sambung@kopi.test",
                "to": ["owner@kopi.test"],
            },
        }
        async with vendor.serve() as url:
            config = base_config(sambung_store_url, channels)
            config["outlets"] = [
                {
                    "id": "kemang",
                    "name": "Kopi Senja Kemang",
                    "connectors": {
                        "qasir": {
                            "mode": "poll",
                            "api_key": "${QASIR_API_KEY}",
                            "base_url": f"{url}/v1",
                            "interval": "15s",
                        }
                    },
                }
            ]
            env = {"ALERT_BOT_TOKEN": BOT_TOKEN, "ALERT_WHSEC": WHSEC, "QASIR_API_KEY": WRONG_KEY}
            daemon = sambung_daemon(config, env=env)

            def every_channel_has(count: int) -> Callable[[], Any]:
                async def check() -> bool:
                    return (
                        len(telegram.texts()) >= count
                        and len(receiver.requests) >= count
                        and len(mailbox.texts()) >= count
                    )

                return check

            await until(every_channel_has(1))
            await three_more_checks(daemon)  # the vendor still refuses: nothing more is sent
            assert len(telegram.texts()) == len(receiver.requests) == len(mailbox.texts()) == 1
            [fired] = telegram.texts()
            assert fired.startswith("[sambung] FIRED connection_needs_reauth kemang/qasir")
            assert "sambung connect kemang qasir" in fired
            [open_alert] = admin_get(daemon, "/api/v1/alerts?open=true")["alerts"]
            assert open_alert["rule"] == "connection_needs_reauth"
            assert [a["id"] for a in admin_get(daemon, "/api/v1/status")["alerts"]] == [
                open_alert["id"]
            ]

            # The fix: the merchant puts the right key in and reloads; the next poll succeeds.
            written = yaml.safe_load(daemon.config_path.read_text(encoding="utf-8"))
            written["outlets"][0]["connectors"]["qasir"]["api_key"] = QASIR_KEY
            daemon.config_path.write_text(yaml.safe_dump(written), encoding="utf-8")
            assert daemon.process is not None
            daemon.process.send_signal(signal.SIGHUP)
            await until(every_channel_has(2))
            await three_more_checks(daemon)
            assert len(telegram.texts()) == len(receiver.requests) == len(mailbox.texts()) == 2

            recovered = telegram.texts()[1]
            assert recovered.startswith("[sambung] RECOVERED connection_needs_reauth kemang/qasir")
            bodies = [r.payload for r in receiver.requests]
            assert all(r.verified for r in receiver.requests)
            assert [b["type"] for b in bodies] == ["alert.fired", "alert.recovered"]
            assert {b["data"]["alert_id"] for b in bodies} == {open_alert["id"]}
            assert admin_get(daemon, "/api/v1/alerts?open=true")["alerts"] == []
            shown = daemon.cli("alerts")
            assert shown.returncode == 0, shown.stderr
            assert "recovered  connection_needs_reauth  kemang/qasir" in shown.stdout
            assert_no_secret(
                *telegram.texts(),
                *(r.body.decode() for r in receiver.requests),
                *mailbox.texts(),
                shown.stdout,
            )
            daemon.terminate()


async def test_the_gap_report_counts_lost_webhooks_and_its_alert_recovers_when_they_arrive(
    sambung_daemon: StartDaemon, sambung_store_url: str, telegram: FakeTelegram
) -> None:
    vendor = XenditFake(secret_key=XENDIT_KEY, callback_token=XENDIT_TOKEN)
    start = datetime.now(UTC) - timedelta(minutes=30)
    for n in (1, 2, 3):
        vendor.sale(n, start + timedelta(minutes=n))
    async with vendor.serve() as url:
        channels = {
            "phone": {
                "type": "telegram",
                "bot_token": BOT_TOKEN,
                "chat_id": "-1001",
                "base_url": telegram.url,
            }
        }
        config = base_config(sambung_store_url, channels, gap_grace_minutes=0)
        config["outlets"] = [
            {
                "id": "kemang",
                "name": "Kopi Senja Kemang",
                "connectors": {
                    "xendit": {
                        "mode": ["webhook", "poll"],
                        "callback_token": XENDIT_TOKEN,
                        "secret_key": XENDIT_KEY,
                        "base_url": url,
                        "interval": "15s",
                    }
                },
            }
        ]
        daemon = sambung_daemon(config)
        # One callback arrives before the poll; the poll brings all three.
        webhook_url = f"{daemon.url}{WEBHOOKS}/xendit/kemang"
        status, _ = await vendor.send_callback(webhook_url, vendor.callback(invoice_id(1)))
        assert status == 200

        async def polled() -> bool:
            gaps = admin_get(daemon, "/api/v1/gaps?outlet=kemang")["gaps"]
            return sum(d["total"] for d in gaps) == 3

        await until(polled)
        [day] = admin_get(daemon, "/api/v1/gaps?outlet=kemang")["gaps"]
        assert (day["connector"], day["poll_only"], day["total"]) == ("xendit", 2, 3)

        def told(count: int) -> Callable[[], Any]:
            async def check() -> bool:
                return len(telegram.texts()) >= count

            return check

        await until(told(1))
        await three_more_checks(daemon)
        [fired] = telegram.texts()
        assert fired.startswith("[sambung] FIRED webhook_gaps kemang/xendit")
        assert "2 of 3 records" in fired
        shown = daemon.cli("gaps", "--json")
        assert shown.returncode == 0, shown.stderr
        assert [json.loads(line)["poll_only"] for line in shown.stdout.splitlines()] == [2]
        status_text = daemon.cli("status").stdout
        assert "webhook_gaps" in status_text and "POLL ONLY" in status_text

        # The late webhooks arrive: no loss after all.
        for n in (2, 3):
            status, _ = await vendor.send_callback(webhook_url, vendor.callback(invoice_id(n)))
            assert status == 200
        await until(told(2))
        await three_more_checks(daemon)
        assert len(telegram.texts()) == 2
        assert telegram.texts()[1].startswith("[sambung] RECOVERED webhook_gaps kemang/xendit")
        [day] = admin_get(daemon, "/api/v1/gaps")["gaps"]
        assert day["poll_only"] == 0
        assert_no_secret(*telegram.texts(), shown.stdout, status_text)
        daemon.terminate()
