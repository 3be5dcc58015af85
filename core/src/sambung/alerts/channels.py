"""The built-in notifier channels: `webhook` (Standard Webhooks signed), `email` (SMTP) and
`telegram` (the Bot API)."""

from __future__ import annotations

import asyncio
import json
import smtplib
import ssl
from email.message import EmailMessage
from typing import Literal

import aiohttp
from pydantic import Field, HttpUrl, SecretStr

from sambung.delivery.sinks.http import SignedTarget, secret_key, sign
from sambung.redaction import shorten

from .channel import AlertMessage, ChannelSettings, NotifierChannel

# How much of a refusing receiver's answer an error (and so the log) keeps.
MAX_ERROR_BODY = 300


class ChannelRefused(Exception):
    """A receiver did not accept a notice; it is sent again later."""


async def _post(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeout: float,
    shown_url: str,
) -> None:
    """POST `body`; raise `ChannelRefused` unless the answer is 2xx. `shown_url` is what an
    error names (the Bot API's URL holds the bot token)."""
    try:
        async with session.post(
            url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as answer:
            if 200 <= answer.status < 300:
                return
            text = shorten(await answer.text(errors="replace"), MAX_ERROR_BODY)
    except (TimeoutError, aiohttp.ClientError) as err:
        raise ChannelRefused(f"{shown_url}: {type(err).__name__}") from None
    raise ChannelRefused(f"{shown_url}: HTTP {answer.status}: {text}")


class WebhookChannelSettings(ChannelSettings, SignedTarget):
    """Where to POST each transition as JSON, and the `whsec_` secret it is signed with."""


class WebhookChannel(NotifierChannel[WebhookChannelSettings]):
    """POSTs `{"type": "alert.fired" | "alert.recovered", "data": …}` signed as the `http` sink
    signs records (Standard Webhooks), so one receiver verifies both."""

    name = "webhook"

    async def send(self, message: AlertMessage) -> None:
        """One signed POST."""
        body = json.dumps(
            {
                "id": message.id,
                "type": f"alert.{message.transition}",
                "timestamp": self.context.clock.now().isoformat(),
                "data": {**message.as_json(), "text": message.text},
            },
            separators=(",", ":"),
        ).encode()
        timestamp = int(self.context.clock.now().timestamp())
        key = secret_key(self.settings.secret.get_secret_value())
        headers = {
            **self.settings.headers,
            "content-type": "application/json",
            "webhook-id": message.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(key, message.id, timestamp, body),
        }
        url = str(self.settings.url)
        await _post(self.context.session, url, body, headers, self.settings.timeout_seconds, url)


class EmailChannelSettings(ChannelSettings):
    """An SMTP server to send through, and who gets the mail."""

    host: str
    port: int = Field(587, ge=1, le=65535)
    # none: plain SMTP (a relay on this machine); starttls: upgrade on 587; tls: SMTPS on 465.
    security: Literal["none", "starttls", "tls"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    sender: str = Field(alias="from")
    to: list[str] = Field(min_length=1)
    timeout_seconds: float = Field(20.0, gt=0, le=300)


class EmailChannel(NotifierChannel[EmailChannelSettings]):
    """One plain-text mail per transition, through SMTP (in a thread: smtplib blocks)."""

    name = "email"

    async def send(self, message: AlertMessage) -> None:
        """Send the mail; an SMTP error is raised as `ChannelRefused` (retried later)."""
        mail = EmailMessage()
        mail["Subject"] = message.title
        mail["From"] = self.settings.sender
        mail["To"] = ", ".join(self.settings.to)
        mail["Message-ID"] = f"<{message.id}@sambung>"
        mail.set_content(message.text)
        try:
            await asyncio.to_thread(self._deliver, mail)
        except (OSError, smtplib.SMTPException) as err:
            where = f"{self.settings.host}:{self.settings.port}"
            raise ChannelRefused(f"smtp {where}: {type(err).__name__}: {err}") from None

    def _deliver(self, mail: EmailMessage) -> None:
        s = self.settings
        smtp: smtplib.SMTP
        if s.security == "tls":
            smtp = smtplib.SMTP_SSL(
                s.host, s.port, timeout=s.timeout_seconds, context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout_seconds)
        with smtp:
            if s.security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if s.username is not None and s.password is not None:
                smtp.login(s.username, s.password.get_secret_value())
            smtp.send_message(mail)


class TelegramSettings(ChannelSettings):
    """A Telegram bot (its token from @BotFather) and the chat it writes to."""

    bot_token: SecretStr
    chat_id: str
    # The Bot API's address; another only for a local Bot API server (or a test's fake).
    base_url: HttpUrl = HttpUrl("https://api.telegram.org")
    timeout_seconds: float = Field(10.0, gt=0, le=300)


class TelegramChannel(NotifierChannel[TelegramSettings]):
    """`sendMessage` to one chat through the Bot API."""

    name = "telegram"

    async def send(self, message: AlertMessage) -> None:
        """One `sendMessage` call."""
        base = str(self.settings.base_url).rstrip("/")
        url = f"{base}/bot{self.settings.bot_token.get_secret_value()}/sendMessage"
        body = json.dumps(
            {"chat_id": self.settings.chat_id, "text": message.text, "disable_notification": False}
        ).encode()
        headers = {"content-type": "application/json"}
        await _post(
            self.context.session,
            url,
            body,
            headers,
            self.settings.timeout_seconds,
            f"{base}/bot…/sendMessage",
        )
