"""The built-in notifier plugin: its channels registered through the same hook as any plugin's."""

from __future__ import annotations

from sambung.hookspecs import hookimpl

from .channel import RegisterChannel
from .channels import EmailChannel, TelegramChannel, WebhookChannel


@hookimpl
def sambung_register_notifiers(register: RegisterChannel) -> None:
    """Register `webhook`, `email` and `telegram`."""
    register(WebhookChannel)
    register(EmailChannel)
    register(TelegramChannel)
