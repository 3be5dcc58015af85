"""A small plugin module for core's tests: a webhook connector and a sink type."""

from __future__ import annotations

from collections.abc import Callable

from sambung.plugin import (
    ConnectorSettings,
    Secrets,
    Sink,
    SinkSettings,
    WebhookConnector,
    WebhookEvent,
    WebhookRequest,
    hookimpl,
    verify_hmac_sha256,
)


class DemoConnector(WebhookConnector):
    """Accepts anything signed; maps nothing."""

    name = "demo"

    class Settings(ConnectorSettings):
        webhook_secret: Secrets
        retries: int = 3

    def verify(self, request: WebhookRequest) -> None:
        verify_hmac_sha256(request.body, request.headers.get("X-Sig"), self.settings.webhook_secret)

    def parse(self, request: WebhookRequest) -> WebhookEvent:
        return WebhookEvent(event_type="demo", records=[])


class MemorySink(Sink):
    """A sink type that only exists for config validation tests."""

    name = "memory"

    class Settings(SinkSettings):
        capacity: int = 10


@hookimpl
def sambung_register_connectors(register: Callable[[type], None]) -> None:
    register(DemoConnector)


@hookimpl
def sambung_register_sinks(register: Callable[[type], None]) -> None:
    register(MemorySink)
