"""Plugin modules that go wrong in the ways third-party plugins do, for the loader's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from sambung.plugin import (
    ConnectorSettings,
    Mode,
    Page,
    PollConnector,
    PollWindow,
    WebhookConnector,
    hookimpl,
)


class NoParse(WebhookConnector):
    """Declares webhook mode but only implements verify."""

    name = "noparse"

    def verify(self, request: object) -> None:
        return None


class Nameless(WebhookConnector):
    """Forgot its name."""


class HalfRegistering:
    """Registers a good connector, then a bad one: neither may stay registered."""

    class Good(WebhookConnector):
        name = "good_half"
        modes = frozenset({Mode.WEBHOOK})

        def verify(self, request: object) -> None:
            return None

        def parse(self, request: object) -> object:
            return None

    @staticmethod
    @hookimpl
    def sambung_register_connectors(register: Callable[[type], None]) -> None:
        register(HalfRegistering.Good)
        register(Nameless)


class MissingMethod:
    """A plugin whose connector misses a method its mode needs."""

    @staticmethod
    @hookimpl
    def sambung_register_connectors(register: Callable[[type], None]) -> None:
        register(NoParse)


class PollOnPlainSettings(PollConnector):  # type: ignore[type-arg]
    """Polls, but its Settings lack what core reads of every poller (interval, timeout...)."""

    name = "plainpoll"
    Settings = ConnectorSettings

    async def poll(self, window: PollWindow) -> AsyncIterator[Page]:
        yield Page(records=[])


class WrongModeSettings:
    """A plugin whose poll connector's Settings do not extend PollSettings."""

    @staticmethod
    @hookimpl
    def sambung_register_connectors(register: Callable[[type], None]) -> None:
        register(PollOnPlainSettings)


def explode_on_import() -> None:
    raise RuntimeError("this module stands for one that fails to import")
