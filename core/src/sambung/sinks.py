"""What a sink is: a named destination the outbox delivers records to."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class SinkSettings(BaseModel):
    """A sink's YAML block beyond core's routing keys; a sink class extends it with its own."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Sink:
    """Base of every sink class; the dispatcher that drives `deliver` arrives with the outbox."""

    name: ClassVar[str]
    Settings: ClassVar[type[SinkSettings]] = SinkSettings
