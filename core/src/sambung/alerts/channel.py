"""What a notifier channel is: a named way of telling a person that an alert fired or recovered.

A channel class is registered through `sambung_register_notifiers`; the daemon builds one
instance per `alerts.channels` entry of the YAML and calls `send` once per alert transition,
until it returns without raising (a send that raises is retried later, never lost).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from sambung.connectors import settings_argument
from sambung.redaction import redact_optional

if TYPE_CHECKING:
    import aiohttp
    from structlog.typing import FilteringBoundLogger

    from sambung.clock import Clock


class ChannelSettings(BaseModel):
    """A channel's YAML block beyond `type`; a channel class extends it with its own fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)


CS = TypeVar("CS", bound=ChannelSettings, covariant=True)


@dataclass(frozen=True)
class AlertMessage:
    """One alert transition as a channel sends it; every text in it is masked."""

    alert_id: int
    transition: str  # fired | recovered
    rule: str
    subject: str
    message: str
    opened_at: datetime
    recovered_at: datetime | None
    # The same on every retry of this transition on this channel: receivers deduplicate on it.
    id: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "message", redact_optional(self.message) or "")

    @property
    def title(self) -> str:
        """One line: what happened to what."""
        state = "FIRED" if self.transition == "fired" else "RECOVERED"
        return f"[sambung] {state} {self.rule} {self.subject}"

    @property
    def text(self) -> str:
        """The title, the condition, and since when."""
        if self.transition == "fired":
            when = f"since {self.opened_at.isoformat(timespec='seconds')}"
        else:
            assert self.recovered_at is not None
            lasted = self.recovered_at - self.opened_at
            when = (
                f"recovered at {self.recovered_at.isoformat(timespec='seconds')}"
                f" after {_minutes(lasted.total_seconds())}"
            )
        return f"{self.title}\n{self.message}\n{when}"

    def as_json(self) -> dict[str, object]:
        """The fields, for a JSON body."""
        return {
            "id": self.id,
            "alert_id": self.alert_id,
            "transition": self.transition,
            "rule": self.rule,
            "subject": self.subject,
            "message": self.message,
            "opened_at": self.opened_at.isoformat(),
            "recovered_at": None if self.recovered_at is None else self.recovered_at.isoformat(),
        }


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


@dataclass(frozen=True)
class ChannelContext(Generic[CS]):
    """What core gives a channel instance: its YAML name and settings, and shared services."""

    name: str
    settings: CS
    clock: Clock
    session: aiohttp.ClientSession
    log: FilteringBoundLogger


class NotifierChannel(Generic[CS]):
    """Base of every notifier channel: core decides what to send and retries; a channel sends.

    Subscripted with the channel's settings model, which is then its `Settings` too:
    `class TelegramChannel(NotifierChannel[TelegramSettings])`.
    """

    name: ClassVar[str]
    Settings: ClassVar[type[ChannelSettings]] = ChannelSettings

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        settings = settings_argument(cls, ChannelSettings)
        if settings is not None and "Settings" not in cls.__dict__:
            cls.Settings = settings

    def __init__(self, context: ChannelContext[CS]) -> None:
        self.context = context
        self.settings: CS = context.settings
        self.log = context.log

    async def send(self, message: AlertMessage) -> None:
        """Send one transition; raise (any exception) if it was not accepted, to be retried."""
        raise NotImplementedError(f"channel type {self.name!r} does not implement send()")

    async def close(self) -> None:
        """Release what the channel holds; called at shutdown."""


# What `sambung_register_notifiers` is handed: call it once per channel class.
RegisterChannel = Callable[[type[NotifierChannel[ChannelSettings]]], None]
