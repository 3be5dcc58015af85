"""Plugin modules that go wrong in the ways third-party plugins do, for the loader's tests."""

from __future__ import annotations

from collections.abc import Callable

from sambung.plugin import Mode, WebhookConnector, hookimpl


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


def explode_on_import() -> None:
    raise RuntimeError("this module stands for one that fails to import")
