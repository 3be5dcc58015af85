"""What a sink is: a named destination the outbox delivers records to.

A sink class is registered through `sambung_register_sinks`; the dispatcher builds one instance
per `sinks:` entry of the YAML and calls `deliver` with batches of up to `max_batch` items. Each
item's result says what happens next, by its class: `None` (or `Delivered`, with the answer)
delivered, `RetriableError` try again later (honouring `retry_after`), `DeliveryRejected`
dead-letter at once, `SinkGone` stop sending to this sink, `SinkPaused` hold this sink until
a given time (a quota used up), `SinkDisconnected` hold it until its OAuth credentials are
connected again. Any other exception is treated as retriable and logged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

from sambung.connectors import settings_argument
from sambung.ratelimit import Budgets

if TYPE_CHECKING:
    import aiohttp
    from structlog.typing import FilteringBoundLogger

    from sambung.auth.oauth import OAuthClientSettings, OAuthSpec
    from sambung.clock import Clock
    from sambung.connectors import Credentials
    from sambung.http import VendorHttp
    from sambung.testing.fake_vendor import FakeVendor


class SinkSettings(BaseModel):
    """A sink's YAML block beyond core's routing keys; a sink class extends it with its own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def record_kinds(self) -> frozenset[str] | None:
        """The record kinds a sink so configured can take at all; None for every kind.

        Routing sends a sink only these (within its `kinds:`): an accounting sink posting daily
        summaries takes `daily_summary` and no single transactions.
        """
        return None

    def oauth_endpoints(self) -> OAuthSpec | None:
        """The vendor's OAuth endpoints when a sink so configured connects through OAuth
        (`sambung connect --sink NAME`); None for a sink with static credentials."""
        return None


# A sink's settings type; covariant, as a connector's is (`sambung.connectors.S`).
SS = TypeVar("SS", bound=SinkSettings, covariant=True)


@dataclass(frozen=True)
class Delivery:
    """One record revision for one sink; `id` (the webhook-id) is the same on every retry."""

    id: str
    outbox_id: int
    sink: str
    outlet: str
    source_system: str
    kind: str
    record_id: int
    revision: int
    payload: str  # the record's unified JSON
    attempt: int  # 1 for the first try
    created_at: datetime

    @property
    def event_type(self) -> str:
        """What happened, as receivers route on it: `transaction.updated` and so on."""
        return f"{self.kind}.updated"

    def body(self) -> bytes:
        """The JSON every built-in sink sends: the event envelope around the record.

        Built from the stored JSON text rather than re-serialised, so the bytes (and a
        signature over them) are the same on every retry.
        """
        return (
            f'{{"id":"{self.id}","type":"{self.event_type}",'
            f'"timestamp":"{self.created_at.isoformat()}","revision":{self.revision},'
            f'"data":{self.payload}}}'
        ).encode()


@dataclass(frozen=True)
class Delivered:
    """A delivered item with what the destination answered, for the kept attempt.

    Optional: a sink may return plain `None` for a delivered item (nothing is kept but the time
    and latency). A failure carries its answer on the error (`RetriableError`'s and
    `DeliveryRejected`'s `status` and `body`).
    """

    status: int | None = None
    body: str | None = None


# None or `Delivered`: delivered; an exception: what went wrong (see the module docstring).
DeliveryResult = BaseException | Delivered | None


def is_delivered(result: DeliveryResult) -> bool:
    """Whether `result` says the item was delivered."""
    return result is None or isinstance(result, Delivered)


class SinkCredentials(Protocol):
    """The daemon's stored credentials, as a sink that connects through OAuth sees them."""

    def for_sink(
        self,
        name: str,
        settings: OAuthClientSettings,
        spec: OAuthSpec | None,
        http: VendorHttp,
        log: FilteringBoundLogger,
    ) -> Credentials:
        """The tokens of sink `name` (stored under no outlet), fetched through `http`."""
        ...


@dataclass(frozen=True)
class SinkContext(Generic[SS]):
    """What core gives a sink instance: its YAML name and settings, and shared services."""

    name: str
    settings: SS
    clock: Clock
    session: aiohttp.ClientSession
    base_dir: Path
    log: FilteringBoundLogger
    # Rate budgets per vendor account, shared with every other sink of the daemon.
    budgets: Budgets = field(default_factory=Budgets)
    # The daemon's stored credentials, for sinks that connect through OAuth.
    credentials: SinkCredentials | None = None


class Sink(Generic[SS]):
    """Base of every sink class: core owns claiming, retries and dead letters; a sink delivers.

    Subscripted with the sink's settings model, which is then its `Settings` too:
    `class JurnalSink(Sink[JurnalSettings])`.
    """

    name: ClassVar[str]
    Settings: ClassVar[type[SinkSettings]] = SinkSettings
    # Items per `deliver` call: 1 for one-request-per-item sinks, more for ones that batch I/O.
    max_batch: ClassVar[int] = 1

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        settings = settings_argument(cls, SinkSettings)
        if settings is not None and "Settings" not in cls.__dict__:
            cls.Settings = settings

    def __init__(self, context: SinkContext[SS]) -> None:
        self.context = context
        self.settings: SS = context.settings
        self.log = context.log

    async def open(self) -> None:
        """Prepare (open files, check the destination); called once before the first batch."""

    async def close(self) -> None:
        """Release what `open` took; called at shutdown."""

    async def deliver(self, batch: Sequence[Delivery]) -> list[DeliveryResult]:
        """Deliver `batch`; return one result per item, in order (`None` when delivered)."""
        raise NotImplementedError(f"sink type {self.name!r} does not implement deliver()")

    def vendor_url(self) -> str | None:
        """The destination's base URL, for the demo to tell whether it is on this machine."""
        return None

    def example_vendor(self) -> FakeVendor | None:
        """A fake of the destination accepting this sink's credentials, or None.

        Optional. `sambung run --simulate` serves it at `vendor_url()` when that is on this
        machine, so the demo shows records reaching (a stand-in for) the real system.
        """
        return None


# What `sambung_register_sinks` is handed: call it once per sink class.
RegisterSink = Callable[[type[Sink[SinkSettings]]], None]
