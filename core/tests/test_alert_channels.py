"""Notifier channels: registered through the hook like any plugin's, each sending one
transition as its receiver expects it (verified by a real receiver or a faithful fake)."""

from __future__ import annotations

import base64
import email
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import pytest
import structlog
import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope
from sambung import hookimpl
from sambung.alerts.channel import (
    AlertMessage,
    ChannelContext,
    ChannelSettings,
    NotifierChannel,
    RegisterChannel,
)
from sambung.alerts.channels import ChannelRefused, EmailChannel, TelegramChannel, WebhookChannel
from sambung.alerts.service import AlertService
from sambung.clock import SystemClock
from sambung.config import load_config
from sambung.errors import ConfigError, PluginError
from sambung.plugins import check_notifier, load_plugins
from sambung.store import Store
from sambung.testing.daemon import free_port
from sambung.testing.manual_clock import ManualClock
from sambung.testing.receiver import Receiver
from sambung.testing.telegram import FakeTelegram
from standardwebhooks.webhooks import Webhook

sent: list[AlertMessage] = []


class PagerSettings(ChannelSettings):
    """A third party's channel settings."""

    number: str


class PagerChannel(NotifierChannel[PagerSettings]):
    """A third party's channel: remembers what it was asked to send."""

    name = "pager"

    async def send(self, message: AlertMessage) -> None:
        sent.append(message)


@hookimpl
def sambung_register_notifiers(register: RegisterChannel) -> None:
    register(PagerChannel)


def this_module() -> ModuleType:
    return sys.modules[__name__]


def test_builtin_and_plugin_channels_register_through_the_hook() -> None:
    registry = load_plugins(frozenset(), extra_modules=[this_module()])

    assert {"webhook", "email", "telegram", "pager"} <= set(registry.notifiers)
    assert registry.notifiers["pager"].Settings is PagerSettings


def test_an_unfit_channel_class_is_refused() -> None:
    class Nameless(NotifierChannel[PagerSettings]):
        name = "Not A Name"

    with pytest.raises(PluginError, match="name must match"):
        check_notifier(Nameless)
    with pytest.raises(PluginError, match="not a sambung\\.alerts"):
        check_notifier(object)


def write(tmp_path: Path, channels: dict[str, object]) -> Path:
    document = {"outlets": [{"id": "kemang", "name": "Kemang"}], "alerts": {"channels": channels}}
    path = tmp_path / "sambung.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def test_channel_settings_are_validated_by_their_type_and_secrets_masked(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "phone": {"type": "telegram", "bot_token": "123:tg-secret-token", "chat_id": "42"},
            "page": {"type": "pager", "number": "0812"},
        },
    )
    loaded = load_config(path, load_plugins(frozenset(), extra_modules=[this_module()]))

    assert set(loaded.channel_settings) == {"phone", "page"}
    assert "123:tg-secret-token" in loaded.secrets


def test_a_bad_channel_block_names_its_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {"phone": {"type": "telegarm", "chat_id": "42"}, "mail": {"type": "email", "host": "h"}},
    )
    with pytest.raises(ConfigError) as raised:
        load_config(path, load_plugins(frozenset()))
    problems = {p.path: p.message for p in raised.value.problems}

    assert "did you mean 'telegram'" in problems["alerts.channels.phone.type"]
    assert "alerts.channels.mail.to" in problems


# -- the built-in channels against their receivers -----------------------------------------------

WHSEC = "whsec_" + base64.b64encode(b"alerts-test-secret-of-32-bytes!!").decode()
TOKEN = "123456:tg-bot-token-secret"


def message(transition: str = "fired") -> AlertMessage:
    opened = datetime(2026, 11, 26, 13, 0, tzinfo=UTC)
    return AlertMessage(
        alert_id=7,
        transition=transition,
        rule="connection_needs_reauth",
        subject="kemang/qasir",
        message="kemang/qasir needs new credentials (AuthError: 401)",
        opened_at=opened,
        recovered_at=opened + timedelta(minutes=3) if transition == "recovered" else None,
        id=f"alert_7_{transition}",
    )


def channel(
    cls: type[NotifierChannel[Any]], session: aiohttp.ClientSession, **settings: Any
) -> Any:
    context = ChannelContext(
        name="test",
        settings=cls.Settings.model_validate(settings),
        clock=SystemClock(),
        session=session,
        log=structlog.get_logger(),
    )
    return cls(context)


async def test_webhook_channel_posts_a_body_standardwebhooks_verifies() -> None:
    verifier = Webhook(WHSEC)
    receiver = Receiver(WHSEC, verify=lambda body, headers: verifier.verify(body, dict(headers)))
    url = await receiver.start()
    try:
        async with aiohttp.ClientSession() as session:
            await channel(WebhookChannel, session, url=url, secret=WHSEC).send(message("recovered"))
            receiver.answer_with(503)
            with pytest.raises(ChannelRefused, match="HTTP 503"):
                await channel(WebhookChannel, session, url=url, secret=WHSEC).send(message())
    finally:
        await receiver.stop()

    first = receiver.requests[0]
    assert first.verified and first.webhook_id == "alert_7_recovered"
    assert first.payload["type"] == "alert.recovered"
    assert first.payload["data"]["subject"] == "kemang/qasir"
    assert "recovered at 2026-11-26T13:03:00+00:00 after 3 min" in first.payload["data"]["text"]


async def test_telegram_channel_calls_send_message_with_its_token() -> None:
    fake = FakeTelegram(TOKEN)
    base = await fake.start()
    try:
        async with aiohttp.ClientSession() as session:
            good = channel(TelegramChannel, session, bot_token=TOKEN, chat_id="-100", base_url=base)
            await good.send(message())
            fake.fail(502)
            with pytest.raises(ChannelRefused) as failed:
                await good.send(message())
            wrong = channel(TelegramChannel, session, bot_token="9:no", chat_id="1", base_url=base)
            with pytest.raises(ChannelRefused, match="HTTP 401"):
                await wrong.send(message())
    finally:
        await fake.stop()

    [sent] = fake.messages
    assert sent.chat_id == "-100"
    assert sent.text.startswith("[sambung] FIRED connection_needs_reauth kemang/qasir\n")
    assert TOKEN not in str(failed.value)  # the Bot API's URL holds the token


async def test_email_channel_sends_through_a_real_smtp_server() -> None:
    mailbox: list[Envelope] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
            mailbox.append(envelope)
            return "250 OK"

    port = free_port()
    smtp = Controller(Handler(), hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        async with aiohttp.ClientSession() as session:
            mail = channel(
                EmailChannel,
                session,
                host="127.0.0.1",
                port=port,
                security="none",
                **{"from": "sambung@kopi.test"},
                to=["owner@kopi.test"],
            )
            await mail.send(message())
            closed = channel(
                EmailChannel,
                session,
                host="127.0.0.1",
                port=free_port(),
                security="none",
                **{"from": "sambung@kopi.test"},
                to=["owner@kopi.test"],
            )
            with pytest.raises(ChannelRefused, match=r"smtp 127\.0\.0\.1"):
                await closed.send(message())
    finally:
        smtp.stop()

    [envelope] = mailbox
    assert envelope.rcpt_tos == ["owner@kopi.test"]
    parsed = email.message_from_bytes(envelope.content)  # type: ignore[arg-type]
    assert parsed["Subject"] == "[sambung] FIRED connection_needs_reauth kemang/qasir"
    assert "needs new credentials" in parsed.get_payload()


# -- the service: each transition sent once per channel, a failed send retried ---------------------


class FlakyPager(NotifierChannel[PagerSettings]):
    """Refuses its first send (the line is busy), then accepts."""

    name = "flaky"
    refusals = 1

    async def send(self, message: AlertMessage) -> None:
        if FlakyPager.refusals:
            FlakyPager.refusals -= 1
            raise ConnectionError(f"busy; number {self.settings.number}")
        sent.append(message)


@hookimpl(specname="sambung_register_notifiers")
def register_flaky(register: RegisterChannel) -> None:
    register(FlakyPager)


async def test_a_failed_send_is_retried_later_and_each_transition_sent_once(
    store: Store, clock: ManualClock, tmp_path: Path
) -> None:
    sent.clear()
    FlakyPager.refusals = 1
    registry = load_plugins(frozenset(), extra_modules=[this_module()])
    document = {
        "outlets": [{"id": "kemang", "name": "Kemang"}],
        "sinks": {"books": {"type": "jsonl", "path": "out.jsonl"}},
        "alerts": {
            "channels": {
                "steady": {"type": "pager", "number": "0811"},
                "shaky": {"type": "flaky", "number": "0812"},
            }
        },
    }
    path = tmp_path / "sambung.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    paused = {"books": {"paused_until": clock.now() + timedelta(hours=1), "last_error": "quota"}}
    live: dict[str, Any] = paused
    service = AlertService(store, load_config(path, registry), registry, clock, sinks=lambda: live)
    service.open()
    try:
        await service.check_once()
        assert await service.send_due() == 1  # steady; shaky refused and waits 5 s
        for _ in range(2):
            await service.check_once()
            assert await service.send_due() == 0
        clock.advance(5)
        assert await service.send_due() == 1
        live = {}
        await service.check_once()
        assert await service.send_due() == 2
        clock.advance(3600)
        await service.check_once()
        assert await service.send_due() == 0
    finally:
        await service.close()

    assert sorted((m.transition, m.subject) for m in sent) == [
        ("fired", "books"),
        ("fired", "books"),
        ("recovered", "books"),
        ("recovered", "books"),
    ]
