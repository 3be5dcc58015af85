"""What a connector is: base classes per mode, its settings, and what core hands it.

A plugin subclasses one base per mode it supports and writes only the vendor-specific parts;
core owns every loop, the store, retries and logging around them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, TypeVar
from zoneinfo import ZoneInfo

from multidict import CIMultiDict, CIMultiDictProxy
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr

from .clock import Clock, SystemClock
from .models import Record
from .parse import loads
from .signing import sign_hex, verify_hmac_sha256

if TYPE_CHECKING:
    from .csvfiles import CsvStream, RowError

F = TypeVar("F", bound=Callable[..., Any])


class Mode(StrEnum):
    """How records reach sambung from a vendor."""

    WEBHOOK = "webhook"
    POLL = "poll"
    FILE_DROP = "file-drop"


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


# One mode or a list of them (`mode: webhook` or `mode: [webhook, poll]`).
Modes = Annotated[frozenset[Mode], BeforeValidator(_as_list)]

# One secret or a list: while a secret is rotated, the old and the new one are both accepted.
Secrets = Annotated[tuple[SecretStr, ...], BeforeValidator(_as_list), Field(min_length=1)]


class ConnectorSettings(BaseModel):
    """A connector's YAML block. Core owns `mode` and `enabled`; a plugin adds its own fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Modes
    enabled: bool = True


@dataclass(frozen=True)
class Outlet:
    """One shop branch, as configured."""

    id: str
    name: str
    timezone: ZoneInfo


@dataclass(frozen=True)
class ConnectorContext:
    """Everything core injects into a connector instance (one per outlet and connector)."""

    outlet: Outlet
    settings: ConnectorSettings
    log: Any  # a structlog BoundLogger, already bound to outlet and connector
    clock: Clock = field(default_factory=SystemClock)


class Connector:
    """Base of every connector. Subclass the base of each mode you support, not this one."""

    name: ClassVar[str]
    modes: ClassVar[frozenset[Mode]] = frozenset()
    Settings: ClassVar[type[ConnectorSettings]] = ConnectorSettings

    def __init__(self, context: ConnectorContext) -> None:
        self.context = context
        self.outlet = context.outlet
        self.settings: Any = context.settings
        self.log = context.log


@dataclass(frozen=True)
class WebhookRequest:
    """An incoming webhook as a connector sees it: raw bytes, headers and query, no framework."""

    body: bytes
    # Case-insensitive, as HTTP headers are (core passes aiohttp's CIMultiDictProxy).
    headers: Mapping[str, str]
    query: Mapping[str, str] = field(default_factory=dict)

    @cached_property
    def payload(self) -> Any:
        """The body as JSON, with exact Decimals; raises `InvalidPayload` if it is not JSON."""
        return loads(self.body)

    @cached_property
    def body_sha256(self) -> str:
        """Hex SHA-256 of the raw body: the default key to recognise a repeated delivery."""
        return hashlib.sha256(self.body).hexdigest()


@dataclass(frozen=True)
class WebhookEvent:
    """What a connector made of one webhook: its event type and the records it carries."""

    event_type: str
    records: list[Record]
    # Identifies the delivery, so a resend is recognised; defaults to the body's SHA-256.
    dedup_key: str | None = None


def required(method: F) -> F:
    """Mark a base-class method that a connector of that mode must override."""
    method.__sambung_required__ = True  # type: ignore[attr-defined]
    return method


def is_implemented(method: Any) -> bool:
    """Whether a connector class overrides a `required` base method (or defines it at all)."""
    return callable(method) and not getattr(method, "__sambung_required__", False)


class WebhookConnector(Connector):
    """A connector that receives pushed events on the public listener."""

    modes = frozenset({Mode.WEBHOOK})

    @required
    def verify(self, request: WebhookRequest) -> None:
        """Raise `SignatureError` unless the request is authentic. Called before anything else."""
        raise NotImplementedError

    @required
    def parse(self, request: WebhookRequest) -> WebhookEvent:
        """Map a verified request to records; raise `InvalidRecord` naming what is wrong."""
        raise NotImplementedError

    def example_webhook(self, sequence: int) -> WebhookRequest | None:
        """A realistic request this connector accepts, signed; None if the plugin has none.

        Optional. The run command's simulator posts these (`sequence` counts up from 1), and the
        test kit's conformance suite checks that they verify and map.
        """
        return None


class HmacWebhookSettings(ConnectorSettings):
    """Settings of a webhook whose body is signed with HMAC-SHA256 (hex) in one header."""

    webhook_secret: Secrets
    signature_header: str = "X-Webhook-Signature"


class HmacWebhookConnector(WebhookConnector):
    """A webhook connector for the commonest scheme: hex HMAC-SHA256 of the raw body.

    A subclass sets its vendor's default header by overriding `signature_header` in its own
    `Settings(HmacWebhookSettings)` and writes only `parse`.
    """

    Settings: ClassVar[type[ConnectorSettings]] = HmacWebhookSettings

    def verify(self, request: WebhookRequest) -> None:
        """Accept only bodies signed under one of the configured secrets."""
        header = self.settings.signature_header
        verify_hmac_sha256(
            request.body, request.headers.get(header), self.settings.webhook_secret, header=header
        )

    def example_body(self, sequence: int) -> bytes | None:
        """A realistic body for `example_webhook`, which signs it; None if there is none."""
        return None

    def example_webhook(self, sequence: int) -> WebhookRequest | None:
        """`example_body` signed with the first configured secret."""
        body = self.example_body(sequence)
        if body is None:
            return None
        return WebhookRequest(body=body, headers=self.sign(body))

    def sign(self, body: bytes) -> CIMultiDictProxy[str]:
        """Headers a vendor would send with `body` (for the simulator and tests)."""
        secret = self.settings.webhook_secret[0].get_secret_value()
        headers = CIMultiDict(
            {
                self.settings.signature_header: sign_hex(secret, body),
                "Content-Type": "application/json",
            }
        )
        return CIMultiDictProxy(headers)


MODE_METHODS: dict[Mode, tuple[str, ...]] = {
    Mode.WEBHOOK: ("verify", "parse"),
    Mode.POLL: ("poll",),
    Mode.FILE_DROP: ("parse_file",),
}


# -- file-drop -------------------------------------------------------------------------------


class FileDropSettings(ConnectorSettings):
    """Settings core reads for the file-drop mode (CSV exports dropped into an inbox)."""

    # The folder to watch; default `<YAML folder>/data/inbox/<outlet>/<connector>`.
    inbox: str | None = None
    # skip: import the good rows and report the bad ones; reject_file: import nothing if any
    # row is bad.
    on_row_error: Literal["skip", "reject_file"] = "skip"
    # native: the vendor's own export; generic: sambung's documented columns (see `columns`).
    format: Literal["native", "generic"] = "native"
    # For `format: generic`: our column name → the header in the merchant's file.
    columns: dict[str, str] = Field(default_factory=dict)
    # auto decides per file from its cells; id = 25.000,50; en = 25,000.50; plain = 25000.50.
    number_style: Literal["auto", "id", "en", "plain"] = "auto"
    max_file_bytes: int = Field(256 * 1_048_576, gt=0)
    # A file is read once its size and modification time have not changed for this long.
    settle_seconds: float = Field(2.0, ge=0)
    poll_seconds: float = Field(1.0, gt=0)


class FileDropConnector(Connector):
    """A connector that reads a vendor's CSV export, row by row, through core's `CsvStream`.

    Core opens the file (encoding, delimiter and number style decided per file), batches the
    records, commits them and writes the errors file; the plugin maps rows in `parse_file`.
    """

    modes = frozenset({Mode.FILE_DROP})
    Settings: ClassVar[type[ConnectorSettings]] = FileDropSettings
    # Header names whose cells decide a file's number style under `number_style: auto`.
    amount_columns: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A connector with several mode bases (webhook and file-drop) supports them all.
        if "modes" not in cls.__dict__:
            cls.modes = frozenset().union(
                *(base.__dict__.get("modes", frozenset()) for base in cls.__mro__)
            )

    @required
    def parse_file(self, stream: CsvStream) -> Iterator[Record | RowError]:
        """Yield a record or a `RowError` for every row of a `sambung.csvfiles.CsvStream`."""
        raise NotImplementedError

    def example_file(self, sequence: int, *, bad_row: bool = False) -> bytes | None:
        """A realistic export for the run command's simulator; None if the plugin has none.

        With `bad_row`, one row must be one the connector rejects, to show the errors file.
        """
        return None
