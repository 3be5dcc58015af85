"""What a connector is: base classes per mode, its settings, and what core hands it.

A plugin subclasses one base per mode it supports and writes only the vendor-specific parts;
core owns every loop, the store, retries and logging around them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from functools import cached_property
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    ClassVar,
    Generic,
    Literal,
    Protocol,
    Self,
    TypeVar,
    get_args,
)

from multidict import CIMultiDict, CIMultiDictProxy
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    HttpUrl,
    ModelWrapValidatorHandler,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails

from .auth.oauth import OAuthClientSettings, OAuthSpec
from .auth.signing import sign_hex, verify_hmac_sha256
from .clock import Clock, SystemClock
from .http import VendorHttp
from .models import Outlet, Record
from .parse import loads

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

    from .auth.tokens import Token
    from .intake.csvfiles import CsvStream, RowError
    from .intake.known import KnownRecords
    from .testing.fake_vendor import FakeVendor

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


class Mode(StrEnum):
    """How records reach sambung from a vendor."""

    WEBHOOK = "webhook"
    POLL = "poll"
    FILE_DROP = "file-drop"


def _as_list(value: object) -> object:
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


class OAuthSettings(ConnectorSettings, OAuthClientSettings):
    """YAML options of a connector that connects through OAuth (mixed into its `Settings`)."""

    # Optional one-time seed: tokens obtained elsewhere. Once stored, the store's (refreshed,
    # rotated) tokens win; a changed seed replaces tokens that came from a seed.
    access_token: SecretStr | None = None
    refresh_token: SecretStr | None = None


# A connector's settings type. Covariant, so that `PollConnector[PawoonSettings]` is a
# `PollConnector[PollSettings]`: core handles every poller through the base's settings.
S = TypeVar("S", bound=ConnectorSettings, covariant=True)


class Credentials(Protocol):
    """One connection's stored OAuth tokens, as core hands them to a plugin.

    `key` and `fetch` plug into `with_token`, which refreshes once on a 401 around one request.
    """

    @property
    def key(self) -> str:
        """The connection's key in the shared token cache."""
        ...

    @property
    def reconnect(self) -> str:
        """The command that connects this connection again, for messages and logs."""
        ...

    async def token(self) -> Token:
        """A fresh access token: cached, else stored, else refreshed (once for all callers)."""
        ...

    async def fetch(self, previous: Token | None) -> Token:
        """The token cache's fetch: the stored token if fresh, else a refresh."""
        ...

    async def invalidate(self, failed_token: Token) -> None:
        """The vendor refused `failed_token`: the next `token()` refreshes."""
        ...

    async def forget(self) -> None:
        """Drop the cached token, whichever it is (before a retry after an `AuthError`)."""
        ...

    async def updated_at(self) -> datetime | None:
        """When this connection's stored credential last changed, if there is one."""
        ...


@dataclass(frozen=True)
class ConnectorContext(Generic[S]):
    """Everything core injects into a connector instance (one per outlet and connector)."""

    outlet: Outlet
    settings: S
    # Already bound to outlet and connector.
    log: FilteringBoundLogger
    clock: Clock = field(default_factory=SystemClock)
    # The vendor HTTP client, for connectors that call out (poll).
    http: VendorHttp | None = None
    # For connectors that declare `oauth`: their stored tokens.
    credentials: Credentials | None = None
    # For poll connectors: a read-only view of the records already stored for this outlet, for
    # a vendor with no list API whose poll asks about ids we know (`sambung.intake.known`).
    known: KnownRecords | None = None


class Connector(Generic[S]):
    """Base of every connector. Subclass the base of each mode you support, not this one.

    The base is subscripted with the connector's settings model, which is then its `Settings`
    too: `class QasirConnector(PollConnector[QasirSettings])`.
    """

    name: ClassVar[str]
    modes: ClassVar[frozenset[Mode]] = frozenset()
    # The model of the connector's YAML block; set from the base's type argument.
    Settings: ClassVar[type[ConnectorSettings]] = ConnectorSettings
    # The vendor's OAuth authorization-code endpoints, for connectors connected with
    # `sambung connect` (their Settings then include `sambung.auth.oauth.OAuthSettings`).
    oauth: ClassVar[OAuthSpec | None] = None

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        # A class with several mode bases (webhook, poll, file-drop) supports all their modes,
        # unless it declares its own set.
        if "modes" not in cls.__dict__:
            cls.modes = frozenset().union(*(getattr(b, "modes", ()) for b in cls.__mro__[1:]))
        settings = settings_argument(cls, ConnectorSettings)
        if settings is not None and "Settings" not in cls.__dict__:
            cls.Settings = settings

    def __init__(self, context: ConnectorContext[S]) -> None:
        self.context = context
        self.outlet = context.outlet
        self.settings: S = context.settings
        self.log = context.log

    @property
    def credentials(self) -> Credentials:
        """The stored OAuth tokens core injected (for connectors that declare `oauth`)."""
        credentials = self.context.credentials
        if credentials is None:
            raise RuntimeError(f"{self.name}: no credentials injected (core sets them for oauth)")
        return credentials

    def oauth_endpoints(self) -> OAuthSpec | None:
        """This connection's OAuth endpoints: `oauth`, moved to `oauth_base_url` when set."""
        if self.oauth is None or not isinstance(self.settings, OAuthClientSettings):
            return self.oauth
        base = self.settings.oauth_base_url
        return self.oauth.at(str(base) if base else None, self.settings.scopes)


def settings_argument(cls: type, bound: type[M]) -> type[M] | None:
    """The settings model `cls` subscripted its bases with (`PollConnector[QasirSettings]`).

    Several bases must agree (`HmacWebhookConnector[X], PollConnector[X]`); a class whose
    bases are not subscripted with a model gives None and keeps its inherited `Settings`.
    """
    found = {
        argument
        for base in cls.__dict__.get("__orig_bases__", ())
        for argument in get_args(base)
        if isinstance(argument, type) and issubclass(argument, bound)
    }
    if len(found) > 1:
        names = ", ".join(sorted(model.__name__ for model in found))
        raise TypeError(f"{cls.__name__}: its bases name different settings models ({names})")
    return found.pop() if found else None


@dataclass(frozen=True)
class WebhookRequest:
    """An incoming webhook as a connector sees it: raw bytes, headers and query, no framework."""

    body: bytes
    # Case-insensitive, as HTTP headers are (core passes aiohttp's CIMultiDictProxy).
    headers: Mapping[str, str]
    query: Mapping[str, str] = field(default_factory=dict)

    @cached_property
    def payload(self) -> object:
        """The body as JSON, with exact Decimals; raises `InvalidPayload` if it is not JSON.

        `object`, not a schema: a connector hands it to its `mapping`, which reads what it
        needs with `sambung.plugin`'s parse helpers (`require`, `money`, ...).
        """
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


def is_implemented(method: object) -> bool:
    """Whether a connector class overrides a `required` base method (or defines it at all)."""
    return callable(method) and not getattr(method, "__sambung_required__", False)


class WebhookConnector(Connector[S]):
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

    def example_payment(
        self, sequence: int, *, reference: str, amount: Decimal, method: str, paid_at: datetime
    ) -> WebhookRequest | None:
        """A payment gateway's callback, signed: `amount` paid at `paid_at` for the order
        `reference` (a POS sale's), through a channel of `method` (`qris`, `ewallet`); None if
        the connector is no gateway or has no examples.

        Optional. The simulator pays the demo's POS sales with it, so `make run` shows days
        that reconcile (and, leaving some unpaid, days that do not).
        """
        return None

    def signed(self, body: bytes) -> WebhookRequest | None:
        """`body` authenticated as the vendor would send it; None if it cannot be signed.

        Optional, for tests: the hostile-input harness signs every body it makes up with it, so
        its fuzzing reaches `parse` and not only `verify`. A vendor that signs inside the body
        rewrites only its signature there, leaving every other byte as given.
        """
        return None


class HmacWebhookSettings(ConnectorSettings):
    """Settings of a webhook whose body is signed with HMAC-SHA256 (hex) in one header."""

    webhook_secret: Secrets
    signature_header: str = "X-Webhook-Signature"


HS = TypeVar("HS", bound=HmacWebhookSettings, covariant=True)


class HmacWebhookConnector(WebhookConnector[HS]):
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
        return self.signed(body)

    def signed(self, body: bytes) -> WebhookRequest:
        """`body` with the signature header of the first configured secret."""
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


# What `sambung_register_connectors` is handed: call it once per connector class.
RegisterConnector = Callable[[type[Connector[ConnectorSettings]]], None]


M = TypeVar("M", bound=BaseModel)


def settings_as(settings: BaseModel, kind: type[M]) -> M:
    """`settings` as the settings base of a mode (`FileDropSettings`), which registration
    checked that a connector of that mode extends; core reads that base's fields typed."""
    if not isinstance(settings, kind):
        raise TypeError(f"{type(settings).__name__} does not extend {kind.__name__}")
    return settings


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


FS = TypeVar("FS", bound=FileDropSettings, covariant=True)


class FileDropConnector(Connector[FS]):
    """A connector that reads a vendor's CSV export, row by row, through core's `CsvStream`.

    Core opens the file (encoding, delimiter and number style decided per file), batches the
    records, commits them and writes the errors file; the plugin maps rows in `parse_file`.
    """

    modes = frozenset({Mode.FILE_DROP})
    Settings: ClassVar[type[ConnectorSettings]] = FileDropSettings
    # Header names whose cells decide a file's number style under `number_style: auto`.
    amount_columns: ClassVar[tuple[str, ...]] = ()

    @required
    def parse_file(self, stream: CsvStream) -> Iterator[Record | RowError]:
        """Yield a record or a `RowError` for every row of a `sambung.intake.csvfiles.CsvStream`."""
        raise NotImplementedError

    def example_file(self, sequence: int, *, bad_row: bool = False) -> bytes | None:
        """A realistic export for the run command's simulator; None if the plugin has none.

        With `bad_row`, one row must be one the connector rejects, to show the errors file.
        """
        return None


# -- poll mode ----------------------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def _duration(value: object) -> object:
    """`5m`, `15s`, `2h`, `1d` or a number of seconds → timedelta."""
    if isinstance(value, timedelta | bool):
        return value
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    if isinstance(value, str) and (match := _DURATION.match(value)):
        return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    raise ValueError(f"expected a duration such as 30s, 5m or 1h, got {value!r}")


# A YAML duration: `interval: 5m`, `timeout: 30s`, or plain seconds.
Duration = Annotated[timedelta, BeforeValidator(_duration)]


class PollSettings(ConnectorSettings):
    """Settings core reads for every polled connection; a plugin adds its credentials."""

    # The vendor's API; each connector sets its own default (the demo serves fakes there).
    base_url: HttpUrl | None = None
    interval: Duration = timedelta(minutes=5)
    # Each run re-reads this much before the cursor, so a record updated late or sharing the
    # cursor's second is not skipped; the upsert fingerprint makes the overlap free of duplicates.
    overlap: Duration = timedelta(minutes=2)
    # How far back the very first poll of a connection reaches.
    lookback: Duration = timedelta(days=1)
    timeout: Duration = timedelta(seconds=30)
    # Attempts after the first within one run, for timeouts, connection errors, 5xx and 429.
    retries: int = Field(4, ge=0, le=20)
    # Override the connector's rate budget for this vendor account (calls per second, in flight).
    rate_limit: float | None = Field(None, gt=0)
    max_in_flight: int | None = Field(None, ge=1)

    # Fields a subclass needs only in some modes (`{Mode.POLL: ("api_key",)}`): optional in the
    # model, required when the YAML turns that mode on.
    required_in_mode: ClassVar[dict[Mode, tuple[str, ...]]] = {}

    @field_validator("interval")
    @classmethod
    def _not_too_often(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=15):
            raise ValueError("interval must be at least 15s (vendors rate-limit polling)")
        return value

    @model_validator(mode="wrap")
    @classmethod
    def _mode_fields(cls, data: object, handler: ModelWrapValidatorHandler[Self]) -> Self:
        settings = handler(data)
        missing = [
            name
            for mode, names in cls.required_in_mode.items()
            if mode in settings.mode
            for name in names
            if getattr(settings, name, None) is None
        ]
        if missing:
            raise ValidationError.from_exception_data(
                cls.__name__,
                [InitErrorDetails(type="missing", loc=(name,), input=data) for name in missing],
            )
        return settings


def configured(value: T | None, name: str) -> T:
    """A setting that `required_in_mode` makes present in the mode at hand (None is a bug).

    Validation refuses a YAML block that turns the mode on without it, so this only narrows
    the optional field's type where that mode's code reads it.
    """
    if value is None:
        from .errors import ConfigError

        raise ConfigError(f"{name} is required in this mode")
    return value


@dataclass(frozen=True)
class PollWindow:
    """What one poll run asks a connector for: records changed in [since, until]."""

    since: datetime
    until: datetime


@dataclass(frozen=True)
class Page:
    """One page a poll yields: its records and how far the stream is now complete.

    `cursor` is the instant before which every record has been yielded (the newest change time
    in the page when the vendor sorts ascending), or None when the page does not say (a vendor
    that does not sort: yield the cursor with the last page only). Core commits the records and
    the cursor in one transaction and never moves the cursor backwards.
    """

    records: Sequence[Record]
    cursor: datetime | None = None
    # Rows the connector could not map: each goes to the DLQ, the page goes on.
    rejects: Sequence[Rejected] = ()


@dataclass(frozen=True)
class Rejected:
    """A vendor row that did not map, with why and the row itself (JSON text) for replay."""

    error: Exception
    payload: str
    field: str | None = None


PS = TypeVar("PS", bound=PollSettings, covariant=True)


class PollConnector(Connector[PS]):
    """A connector whose records core fetches on a schedule.

    The plugin writes `poll(window)`: fetch one run's pages from the vendor, oldest first, and
    yield each as a `Page`. Core schedules, retries, rate-limits, commits and keeps the cursor.
    """

    modes = frozenset({Mode.POLL})
    Settings: ClassVar[type[ConnectorSettings]] = PollSettings
    # The vendor's documented budget per account; settings may lower or raise it.
    rate_limit: ClassVar[float] = 5.0
    max_in_flight: ClassVar[int] = 4

    @required
    def poll(self, window: PollWindow) -> AsyncIterator[Page]:
        """Yield the pages of records changed in `window`, oldest first (an async generator)."""
        raise NotImplementedError

    def account(self) -> str:
        """Which vendor account this connection uses: loops with the same one share a budget.

        Default: the connector's name and its settings' secrets, hashed. Override when the
        account is better named by something else (a client id).
        """
        secrets = sorted(secret_values(self.settings).values())
        digest = hashlib.sha256("\0".join(secrets).encode()).hexdigest()[:16]
        return f"{self.name}:{digest}"

    async def reauthenticate(self) -> None:
        """Drop cached credentials so the next request fetches fresh ones (after a 401)."""

    def example_vendor(self) -> FakeVendor | None:
        """A fake of this vendor accepting this connection's credentials, or None.

        Optional. `sambung run --simulate` serves it at the connection's `base_url` when that
        is on this machine, and adds sales to it with `sale(sequence, at)`.
        """
        return None

    @property
    def known(self) -> KnownRecords:
        """The records already stored for this outlet, as core injected them."""
        known = self.context.known
        if known is None:
            raise RuntimeError(f"{self.name}: no stored records injected (core sets context.known)")
        return known

    @property
    def http(self) -> VendorHttp:
        """The vendor HTTP client core injected."""
        http = self.context.http
        if http is None:
            raise RuntimeError(f"{self.name}: no HTTP client injected (core sets context.http)")
        return http


# The settings base a connector of each mode extends (checked at registration).
MODE_SETTINGS: dict[Mode, type[ConnectorSettings]] = {
    Mode.WEBHOOK: ConnectorSettings,
    Mode.POLL: PollSettings,
    Mode.FILE_DROP: FileDropSettings,
}


def secret_values(settings: BaseModel) -> dict[str, str]:
    """Every secret of a settings model by field name: a `SecretStr`, or each of a `Secrets`
    list (`server_key.0`, `server_key.1` while rotating)."""
    found: dict[str, str] = {}
    for name, value in settings.__dict__.items():
        if isinstance(value, SecretStr):
            found[name] = value.get_secret_value()
        elif isinstance(value, tuple | list):
            for index, item in enumerate(value):
                if isinstance(item, SecretStr):
                    found[f"{name}.{index}"] = item.get_secret_value()
    return found


def page_of(
    rows: Sequence[T],
    to_record: Callable[[T], Record | Sequence[Record]],
    cursor: datetime | None,
) -> Page:
    """Map a page of vendor rows (each to a record or several); a row that does not map becomes
    a `Rejected`, not a failure."""
    from .errors import InvalidRecord

    records: list[Record] = []
    rejects: list[Rejected] = []
    for row in rows:
        try:
            mapped = to_record(row)
            if isinstance(mapped, Record):
                records.append(mapped)
            else:
                records.extend(mapped)
        except InvalidRecord as err:
            rejects.append(Rejected(err, _row_json(row), err.field))
        except ValidationError as err:
            where = ".".join(str(step) for step in err.errors()[0]["loc"]) or None
            rejects.append(Rejected(err, _row_json(row), where))
    return Page(records=records, cursor=cursor, rejects=rejects)


def _row_json(row: object) -> str:
    import json

    return json.dumps(row, default=str, ensure_ascii=False)
