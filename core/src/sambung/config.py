"""The YAML file: `${ENV}` interpolation, validation with every problem named by its path.

Validation runs in two passes. The first checks core's own shape (store, server, outlets,
sinks); the second validates each connector block with that connector's own `Settings` model,
so a plugin's fields get the same error paths as core's.
"""

from __future__ import annotations

import os
import re
import socket
import string
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from .alerts.channel import ChannelSettings
from .connectors import (
    Connector,
    ConnectorSettings,
    Duration,
    Mode,
    Modes,
)
from .delivery.sinks import SinkSettings
from .errors import ConfigError, ConfigProblem
from .models import DERIVED_KINDS, Outlet, PaymentMethod, RecordKind
from .plugins import Registry
from .validation import did_you_mean, explain, is_secret, model_at, path_of
from .yamlsource import Source, read_yaml

WEBHOOK_PATH = "/api/v1/integrations/webhooks"
_MODES: TypeAdapter[frozenset[Mode]] = TypeAdapter(Modes)
_ENV = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ListenerTimeouts(_Strict):
    """How long a client may take to send a request, so slow senders cannot hold connections."""

    # From the connection's start (or the previous answer) to the end of the request's
    # headers; also how long an idle keep-alive connection stays open.
    header_timeout: Duration = timedelta(seconds=15)
    # From the end of the headers to the end of the body; a slower body is answered 408.
    body_timeout: Duration = timedelta(seconds=30)

    @field_validator("header_timeout", "body_timeout")
    @classmethod
    def _sensible_timeout(cls, value: timedelta) -> timedelta:
        if not timedelta(0) < value <= timedelta(hours=1):
            raise ValueError("must be more than 0s and at most 1h")
        return value


class PublicListener(ListenerTimeouts):
    """The listener vendors reach: webhooks and `/healthz`."""

    host: str = "0.0.0.0"
    port: int = Field(8080, ge=0, le=65535)
    max_body_bytes: int = Field(1_048_576, gt=0, le=64 * 1_048_576)
    # The address vendors use to reach this listener (behind a tunnel or proxy); `sambung check`
    # prints webhook URLs with it.
    base_url: AnyHttpUrl | None = None


class AdminListener(ListenerTimeouts):
    """The operator's listener: metrics, readiness, status and operations, behind a token."""

    # CSV uploads may cross a slow tunnel: more time for a body than a vendor's webhook gets.
    body_timeout: Duration = timedelta(seconds=120)

    # Loopback by default: only someone on this machine (or through a tunnel) reaches it.
    host: str = "127.0.0.1"
    port: int = Field(8081, ge=0, le=65535)
    # Sent as `Authorization: Bearer <token>`; compared in constant time.
    token: SecretStr = Field(min_length=16)


class ReadinessSettings(_Strict):
    """When a loop that runs but completes no cycle makes `/readyz` answer 503 (stalled)."""

    # Stalled after this many of the loop's own intervals without a completed cycle...
    stall_intervals: float = Field(3.0, ge=1)
    # ...and never sooner than this (a loop that cycles every 0.2 s may wait on a slow batch).
    stall_min: Duration = timedelta(seconds=30)


class ServerSettings(_Strict):
    """Listeners of the daemon."""

    public: PublicListener = PublicListener()
    # No admin listener unless configured: it needs a token chosen by the operator.
    admin: AdminListener | None = None
    readiness: ReadinessSettings = ReadinessSettings()


class StoreSettings(_Strict):
    """Where state lives; a relative SQLite path is read from the YAML file's folder."""

    url: str = "sqlite:///./data/sambung.db"
    # SQLite: the group commit of ingested events runs in a process of its own, off the event
    # loop's GIL (see store/writer_process.py); false keeps it on a thread of the daemon.
    writer_process: bool = True


class ReplicaSettings(_Strict):
    """This daemon as one of several replicas sharing a PostgreSQL store."""

    # Shown in `sambung status` as the owner of each loop; default hostname-pid-random.
    id: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    # How long a loop's lease lasts without renewal: a dead replica's loops are taken over
    # within about this long. Renewed every third of it.
    lease_ttl: Duration = timedelta(seconds=15)

    @field_validator("lease_ttl")
    @classmethod
    def _sensible_ttl(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=1):
            raise ValueError("lease_ttl must be at least 1s")
        return value


class LogSettings(_Strict):
    """Logging: JSON lines when not on a terminal, readable text when on one."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"
    # Log to this file instead of stderr (relative: from the YAML's folder); SIGHUP reopens
    # it, for logrotate. Unset under systemd: the journal keeps stderr.
    file: str | None = None


_LOCAL_TIME = re.compile(r"^([0-9]{1,2}):([0-5][0-9])$")


def closing_offset(value: str) -> timedelta:
    """`"23:30"` → 23 h 30 min after a business date's midnight; `"25:00"` is 01:00 the next day."""
    match = _LOCAL_TIME.match(value)
    if match is None or int(match.group(1)) > 47:
        raise ValueError("must be a local time HH:MM, 00:00 to 47:59 (past 24:00: the next day)")
    return timedelta(hours=int(match.group(1)), minutes=int(match.group(2)))


def _local_time(value: str) -> str:
    closing_offset(value)
    return value


LocalTime = Annotated[str, AfterValidator(_local_time)]


class SummarySettings(_Strict):
    """Daily summaries: when a business date counts as closed, and how often to look."""

    # Local time (in each outlet's timezone) after which a business date is summed up; past
    # 24:00 means the next morning (a bar closing at 2: "26:00"). "00:00" sums up the current
    # day as it goes (the demo's setting).
    after: LocalTime = "23:30"
    # How often changed and newly closed dates are looked for.
    every_seconds: float = Field(60.0, ge=1, le=3600)
    # On the very first run, how many closed days back are summed up.
    backfill_days: int = Field(7, ge=0, le=366)


# What a payment connector's reference may name of a POS sale (its unified fields).
SALE_REFERENCE_FIELDS = frozenset({"external_id", "outlet", "source_system"})


def _sale_reference(template: str) -> str:
    """`template` if it names only `SALE_REFERENCE_FIELDS`, and at least one of them."""
    try:
        named = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    except ValueError as err:
        raise ValueError(f"reference template {template!r}: {err}") from None
    if not named or not named <= SALE_REFERENCE_FIELDS:
        allowed = ", ".join("{" + f + "}" for f in sorted(SALE_REFERENCE_FIELDS))
        raise ValueError(f"reference template {template!r} may name only {allowed}")
    return template


SaleReference = Annotated[str, AfterValidator(_sale_reference)]
_DEFAULT_MATCH: dict[str, str | None] = {"xendit": "{external_id}", "midtrans": "{external_id}"}


class ReconciliationSettings(_Strict):
    """Daily reconciliation: POS sales against what the payment gateways collected.

    A day closes as for daily summaries (`summaries.after`, an outlet's `summary_after`).
    """

    # Payment connector → the POS sale's field its payment reference carries (Xendit's
    # `external_id`, Midtrans' `order_id`), as a template over the sale's unified fields
    # (`{external_id}`, `PW-{external_id}`); null: its payments are matched by amount only.
    # An outlet with one of these connectors and another one is reconciled.
    match: dict[str, SaleReference | None] = Field(default_factory=lambda: _DEFAULT_MATCH.copy())
    # POS payment methods that go through a gateway and are compared (cash never does; card
    # usually goes through the bank's EDC, not the gateway).
    methods: list[PaymentMethod] = Field(
        default_factory=lambda: [
            PaymentMethod.QRIS,
            PaymentMethod.EWALLET,
            PaymentMethod.BANK_TRANSFER,
        ]
    )
    # A closed day whose figures differ by more than this many rupiah is reported (alerts).
    tolerance: Decimal = Field(Decimal(0), ge=0)
    # ...once it has differed this long: a payment often lands a moment after its sale.
    alert_after_minutes: float = Field(10.0, ge=0)
    every_seconds: float = Field(60.0, ge=1, le=3600)


class CredentialSettings(_Strict):
    """Where the key that encrypts stored credentials (OAuth tokens) lives."""

    # Used when SAMBUNG_SECRET_KEY is not set; created (mode 0600) on first start. Default:
    # `secret.key` beside the SQLite file. A relative path is read from the YAML's folder.
    key_file: str | None = None


class AttemptsRetention(_Strict):
    """How long kept delivery attempts live (`delivery_attempts`)."""

    # Attempts older than this are pruned, whatever their row's status; a delivered row's
    # attempts also go when the row itself is pruned (its sink's `retention_hours`).
    days: float = Field(14.0, ge=0)


class DeliverySettings(_Strict):
    """What core keeps about deliveries beyond the outbox rows."""

    attempts_retention: AttemptsRetention = AttemptsRetention()


class SinkConfig(BaseModel):
    """A named destination: its type, what it receives, and its own settings."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str
    kinds: list[RecordKind] | None = None
    outlets: list[str] | None = None
    # Delivery policy, the same keys for every sink type (core's, not the sink's own settings).
    # Seconds before each attempt; after the last one fails the row goes to the dead letters.
    retry_schedule: list[Annotated[float, Field(ge=0)]] | None = Field(None, min_length=1)
    concurrency: int = Field(16, ge=1, le=512)
    retention_hours: float = Field(168.0, ge=0)


class ChannelConfig(BaseModel):
    """A named notifier channel of `alerts.channels`: its type, and that type's own settings."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str


class AlertSettings(_Strict):
    """Alerts: where they go, how often conditions are checked, and when each one holds."""

    # Each channel's own settings, validated by its type's `Settings` model, by channel name.
    # No channel: alerts are still decided and shown (`sambung alerts`), just not sent.
    channels: dict[str, ChannelConfig] = Field(default_factory=dict)
    check_interval: Duration = timedelta(minutes=1)
    # A polled connection failing (not needs_reauth: that alerts at once) for this long.
    connection_failing_minutes: float = Field(15.0, gt=0)
    # A sink whose oldest pending row waits this long.
    sink_pending_minutes: float = Field(30.0, gt=0)
    # More dead letters than this in the last hour (0: any).
    dead_letters_per_hour: int = Field(20, ge=0)
    # The gap rule counts records a poll stored between `gap_window_minutes` +
    # `gap_grace_minutes` and `gap_grace_minutes` ago that no webhook delivered: the grace lets
    # a webhook arrive after the poll, the window is how long a loss keeps the alert open.
    gap_grace_minutes: float = Field(10.0, ge=0)
    gap_window_minutes: float = Field(60.0, gt=0)

    @field_validator("check_interval")
    @classmethod
    def _sensible_interval(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=0.1) <= value <= timedelta(hours=1):
            raise ValueError("must be at least 0.1s and at most 1h")
        return value


class OutletConfig(_Strict):
    """One shop branch and the systems it uses."""

    id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]+$", max_length=64)]
    name: str
    timezone: str = "Asia/Jakarta"
    connectors: dict[str, Any] = Field(default_factory=dict)
    # This outlet's own closing time for daily summaries (default: `summaries.after`).
    summary_after: LocalTime | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown timezone {value!r} (use an IANA name such as Asia/Jakarta, "
                "Asia/Makassar or Asia/Jayapura)"
            ) from None
        return value


class Config(_Strict):
    """The whole YAML file."""

    store: StoreSettings = StoreSettings()
    server: ServerSettings = ServerSettings()
    log: LogSettings = LogSettings()
    credentials: CredentialSettings = CredentialSettings()
    replicas: ReplicaSettings = ReplicaSettings()
    outlets: list[OutletConfig] = Field(min_length=1)
    sinks: dict[str, SinkConfig] = Field(default_factory=dict)
    summaries: SummarySettings = SummarySettings()
    delivery: DeliverySettings = DeliverySettings()
    alerts: AlertSettings = AlertSettings()
    reconciliation: ReconciliationSettings = ReconciliationSettings()

    @model_validator(mode="after")
    def _references(self) -> Config:
        ids = [outlet.id for outlet in self.outlets]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"outlet ids must be unique, repeated: {', '.join(duplicates)}")
        for name, sink in self.sinks.items():
            unknown = sorted(set(sink.outlets or ()) - set(ids))
            if unknown:
                raise ValueError(f"sinks.{name}.outlets names unknown outlets: {unknown}")
        return self


@dataclass(frozen=True)
class Connection:
    """One connector configured at one outlet: the unit core runs loops and routes for."""

    outlet: Outlet
    connector: type[Connector[ConnectorSettings]]
    settings: ConnectorSettings

    @property
    def name(self) -> str:
        """The connector's name (also its YAML key and source_system)."""
        return self.connector.name


@dataclass(frozen=True)
class LoadedConfig:
    """A validated configuration and what was derived from it."""

    path: Path
    config: Config
    connections: list[Connection]
    secrets: tuple[str, ...]
    # Each sink's own settings, validated by its type's `Settings` model, by sink name.
    sink_settings: Mapping[str, SinkSettings] = field(default_factory=dict)
    # Each alert channel's own settings, validated by its type's `Settings` model, by name.
    channel_settings: Mapping[str, ChannelSettings] = field(default_factory=dict)
    # `${NAME}`s left as written because NAME is not set: only ever with `need_env=False`.
    unresolved: tuple[ConfigProblem, ...] = ()

    def unresolved_at(self, path: str) -> ConfigProblem | None:
        """Why the value at `path` (`server.admin.token`) is an unresolved `${NAME}`, if it is."""
        return next((p for p in self.unresolved if p.path == path), None)

    @property
    def base_dir(self) -> Path:
        """The YAML file's folder: relative paths in it are read from here."""
        return self.path.parent

    def sinks_for(self, outlet: str, kind: str) -> tuple[str, ...]:
        """Names of the sinks that receive a record of `kind` from `outlet`."""
        return tuple(
            name
            for name, sink in self.config.sinks.items()
            if (sink.outlets is None or outlet in sink.outlets)
            and _takes(sink, self.sink_settings.get(name), kind)
        )

    def sink_kinds(self, name: str) -> tuple[str, ...] | None:
        """The record kinds sink `name` receives (None: every kind), its `kinds:` and what its
        type takes combined."""
        configured = self.config.sinks[name].kinds
        settings = self.sink_settings.get(name)
        takes = settings.record_kinds() if settings is not None else None
        if takes is None:
            return tuple(configured) if configured else None  # None: every vendor kind
        wanted: list[str] = list(configured) if configured else sorted(takes)
        return tuple(k for k in wanted if k in takes)

    def public_base_url(self) -> str:
        """The public listener's base URL, as vendors reach it."""
        listener = self.config.server.public
        if listener.base_url is not None:
            return str(listener.base_url).rstrip("/")
        host = listener.host
        if host in ("0.0.0.0", "::", ""):
            host = socket.gethostname()
        return f"http://{host}:{listener.port}"

    def webhook_url(self, connection: Connection) -> str:
        """The URL to register with the vendor for one outlet's webhooks."""
        return f"{self.public_base_url()}{WEBHOOK_PATH}/{connection.name}/{connection.outlet.id}"

    def oauth_callback_url(self, connection: Connection) -> str:
        """Where a vendor sends the merchant back after consent: the connector's
        `redirect_uri`, else the public listener's OAuth callback."""
        return self._callback_url(connection.name, connection.settings)

    def sink_oauth_callback_url(self, name: str) -> str:
        """The same for sink `name` (the callback path carries the sink's name)."""
        return self._callback_url(name, self.sink_settings.get(name))

    def _callback_url(self, name: str, settings: BaseModel | None) -> str:
        from .auth.oauth import CALLBACK_PATH, OAuthClientSettings

        if isinstance(settings, OAuthClientSettings) and settings.redirect_uri is not None:
            return str(settings.redirect_uri)

        return self.public_base_url() + CALLBACK_PATH.format(connector=name)


def _takes(sink: SinkConfig, settings: SinkSettings | None, kind: str) -> bool:
    """Whether a sink receives records of `kind`: its type must take them (`record_kinds`),
    and its `kinds:` list them; with no `kinds:`, every kind taken in from vendors, and a kind
    core derives (daily summaries) only when the type asks for it, so a catch-all sink does not
    start receiving summaries because an accounting sink wants them."""
    takes = settings.record_kinds() if settings is not None else None
    if takes is not None and kind not in takes:
        return False
    if sink.kinds is not None:
        return kind in sink.kinds
    return kind not in DERIVED_KINDS or takes is not None


def load_config(
    path: Path,
    registry: Registry,
    *,
    environ: Mapping[str, str] | None = None,
    need_env: bool = True,
) -> LoadedConfig:
    """Read, interpolate and validate a YAML file; raise `ConfigError` listing every problem.

    With `need_env=False` (commands that only read the store, never call a vendor) a `${NAME}`
    whose NAME is not set stays as written, and `unresolved` names it; the config is refused
    only if such a value is not valid as written, and then the unset variable is named too.
    """
    environ = os.environ if environ is None else environ
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror or err}") from err
    document, source = read_yaml(path, text)
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected a mapping at the top (store, server, outlets)")

    problems: list[ConfigProblem] = []
    unset: list[ConfigProblem] = []
    document = _interpolate(document, environ, (), problems if need_env else unset)
    config: Config | None = None
    try:
        config = Config.model_validate(_secrets_as_text(Config, document, (), source))
    except ValidationError as err:
        problems.extend(explain(err, model=Config))

    # Connector and sink blocks are checked even when core's shape failed, so one run of
    # `sambung check` names every problem in the file.
    connections: list[Connection] = []
    raw_outlets = document.get("outlets")
    for index, raw_outlet in enumerate(raw_outlets if isinstance(raw_outlets, list) else []):
        blocks = raw_outlet.get("connectors") if isinstance(raw_outlet, dict) else None
        if not isinstance(blocks, dict):
            continue
        outlet = _outlet(config, index)
        for name, block in blocks.items():
            where: tuple[str | int, ...] = ("outlets", index, "connectors", str(name))
            connection = _connection(registry, outlet, str(name), block, where, problems, source)
            if connection is not None and outlet is not None:
                connections.append(connection)
    raw_sinks = document.get("sinks")
    sink_settings: dict[str, SinkSettings] = {}
    for name, sink in (raw_sinks if isinstance(raw_sinks, dict) else {}).items():
        if isinstance(sink, dict):
            settings = _check_sink(registry, str(name), sink, problems, source)
            if settings is not None:
                sink_settings[str(name)] = settings
    channel_settings = _check_channels(registry, document.get("alerts"), problems, source)
    for name, settings in sink_settings.items():
        configured = config.sinks[name].kinds if config is not None else None
        takes = settings.record_kinds()
        if configured and takes is not None and not set(configured) & takes:
            problems.append(
                ConfigProblem(
                    f"sinks.{name}.kinds",
                    f"this sink, as configured, takes only {', '.join(sorted(takes))}",
                )
            )
    if problems or config is None:
        # An unset variable that breaks its value is that problem's cause: named first (and
        # alone); one whose value is fine as written stays out of it.
        causes = [u for u in unset if any(_related(u.path, p.path) for p in problems)]
        raise ConfigError(_in_file_order([*causes, *problems], source))
    secrets = tuple(
        value
        for value in _secrets(
            [
                *(c.settings for c in connections),
                config.server,
                *sink_settings.values(),
                *channel_settings.values(),
            ]
        )
        if not (unset and _ENV.search(value))  # an unresolved `${NAME}` is no secret
    )
    # A password in store.url (postgresql://user:password@host/db) is masked in logs too.
    secrets += tuple(filter(None, [urlsplit(config.store.url).password]))
    return LoadedConfig(
        path=path.resolve(),
        config=config,
        connections=connections,
        secrets=secrets,
        sink_settings=sink_settings,
        channel_settings=channel_settings,
        unresolved=tuple(unset),
    )


def _outlet(config: Config | None, index: int) -> Outlet | None:
    """The validated outlet at `index`, or None when core's own validation failed."""
    if config is None:
        return None
    outlet = config.outlets[index]
    return Outlet(outlet.id, outlet.name, ZoneInfo(outlet.timezone))


def _check_sink(
    registry: Registry,
    name: str,
    sink: dict[str, Any],
    problems: list[ConfigProblem],
    source: Source,
) -> SinkSettings | None:
    """Validate a sink block's own settings (everything but core's routing keys)."""
    kind = sink.get("type")
    if kind not in registry.sinks:
        installed = ", ".join(sorted(registry.sinks)) or "none"
        hint = did_you_mean(str(kind), registry.sinks) if isinstance(kind, str) else ""
        problems.append(
            ConfigProblem(
                f"sinks.{name}.type",
                f"no sink type {kind!r} is installed (installed: {installed}){hint}",
            )
        )
        return None
    own = {k: v for k, v in sink.items() if k not in SinkConfig.model_fields}
    model = registry.sinks[kind].Settings
    where = ("sinks", name)
    try:
        return model.model_validate(_secrets_as_text(model, own, where, source))
    except ValidationError as err:
        problems.extend(explain(err, where, model, also_known=SinkConfig.model_fields))
        return None


def _check_channels(
    registry: Registry, alerts: Any, problems: list[ConfigProblem], source: Source
) -> dict[str, ChannelSettings]:
    """Validate each `alerts.channels` block with its channel type's own `Settings` model."""
    channels = alerts.get("channels") if isinstance(alerts, dict) else None
    found: dict[str, ChannelSettings] = {}
    for name, block in (channels if isinstance(channels, dict) else {}).items():
        if not isinstance(block, dict):
            continue  # core's pass reports it
        where = ("alerts", "channels", str(name))
        kind = block.get("type")
        if kind not in registry.notifiers:
            installed = ", ".join(sorted(registry.notifiers)) or "none"
            hint = did_you_mean(str(kind), registry.notifiers) if isinstance(kind, str) else ""
            problems.append(
                ConfigProblem(
                    f"{path_of(where)}.type",
                    f"no notifier channel type {kind!r} is installed (installed: {installed})"
                    f"{hint}",
                )
            )
            continue
        model = registry.notifiers[kind].Settings
        own = {k: v for k, v in block.items() if k not in ChannelConfig.model_fields}
        try:
            found[str(name)] = model.model_validate(_secrets_as_text(model, own, where, source))
        except ValidationError as err:
            problems.extend(explain(err, where, model, also_known=ChannelConfig.model_fields))
    return found


def _connection(
    registry: Registry,
    outlet: Outlet | None,
    name: str,
    block: Any,
    where: tuple[str | int, ...],
    problems: list[ConfigProblem],
    source: Source,
) -> Connection | None:
    cls = registry.connectors.get(name)
    if cls is None:
        installed = ", ".join(sorted(registry.connectors)) or "none"
        hint = did_you_mean(name, registry.connectors)
        problems.append(
            ConfigProblem(
                path_of(where),
                f"no connector named {name!r} is installed (installed: {installed}){hint}",
            )
        )
        return None
    if not isinstance(block, dict):
        problems.append(ConfigProblem(path_of(where), "expected a mapping such as {mode: webhook}"))
        return None
    try:
        settings = cls.Settings.model_validate(_secrets_as_text(cls.Settings, block, where, source))
    except ValidationError as err:
        problems.extend(explain(err, where, cls.Settings))
        settings = None
    try:
        modes = settings.mode if settings else _MODES.validate_python(block.get("mode"))
    except ValidationError:
        return None  # already reported by the Settings model
    unsupported = sorted(modes - cls.modes)
    if unsupported:
        supported = ", ".join(sorted(cls.modes))
        problems.append(
            ConfigProblem(
                path_of((*where, "mode")),
                f"{name} supports {supported}; not {', '.join(unsupported)}",
            )
        )
        return None
    if outlet is None or settings is None:
        return None
    return Connection(outlet=outlet, connector=cls, settings=settings)


def _interpolate(
    node: Any,
    environ: Mapping[str, str],
    where: tuple[str | int, ...],
    problems: list[ConfigProblem],
) -> Any:
    """Replace `${NAME}` and `${NAME:-default}` in every string value; `$$` is a literal `$`.
    An unset NAME without a default is a problem, and `${NAME}` stays as written."""
    if isinstance(node, dict):
        return {k: _interpolate(v, environ, (*where, str(k)), problems) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, environ, (*where, i), problems) for i, v in enumerate(node)]
    if not isinstance(node, str) or "$" not in node:
        return node

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        problems.append(ConfigProblem(path_of(where), f"environment variable {name} is not set"))
        return match.group(0)

    return _ENV.sub(substitute, node)


def _secrets_as_text(
    model: type[BaseModel], data: Any, where: tuple[str | int, ...], source: Source
) -> Any:
    """`data` with every number given to a secret field as the text it was typed as: YAML reads
    an unquoted `webhook_secret: 12345678901234567890` as an int, but a secret is text."""
    if not isinstance(data, dict):
        return data
    fixed = dict(data)
    for key, value in data.items():
        info = model.model_fields.get(str(key))
        if info is None:
            continue
        here = (*where, str(key))
        if is_secret(info.annotation):
            if isinstance(value, list):
                fixed[key] = [_as_text(v, (*here, i), source) for i, v in enumerate(value)]
            else:
                fixed[key] = _as_text(value, here, source)
        elif isinstance(value, dict):
            inner = model_at(model, (str(key),))
            if inner is not None:
                fixed[key] = _secrets_as_text(inner, value, here, source)
            elif (item := model_at(model, (str(key), ""))) is not None:
                fixed[key] = {
                    k: _secrets_as_text(item, v, (*here, str(k)), source) for k, v in value.items()
                }
        elif isinstance(value, list) and (item := model_at(model, (str(key), 0))) is not None:
            fixed[key] = [
                _secrets_as_text(item, v, (*here, i), source) for i, v in enumerate(value)
            ]
    return fixed


def _as_text(value: object, where: tuple[str | int, ...], source: Source) -> object:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return source.numbers.get(path_of(where), str(value))
    return value


def _in_file_order(problems: list[ConfigProblem], source: Source) -> list[ConfigProblem]:
    """One problem per path (the first found), each with its line, in the order of the file;
    a problem with no place in it (a missing top-level key) comes last."""
    unique: dict[str, ConfigProblem] = {}
    for problem in problems:
        if problem.path not in unique:
            at = source.line_of(problem.path)
            line, column = at if at else (None, None)
            unique[problem.path] = ConfigProblem(problem.path, problem.message, line, column)
    return sorted(
        unique.values(),
        key=lambda p: (p.line is None, p.line or 0, p.column or 0, _path_order(p)),
    )


def _related(one: str, other: str) -> bool:
    """Whether two config paths are the same value or one holds the other."""
    return (
        one == other
        or one.startswith((other + ".", other + "["))
        or other.startswith((one + ".", one + "["))
    )


def _path_order(problem: ConfigProblem) -> list[tuple[int, str]]:
    """Sort key that puts `outlets[2]` before `outlets[10]`."""
    return [
        (int(part), "") if part.isdigit() else (-1, part)
        for part in re.split(r"(\d+)", problem.path)
    ]


# Header names whose values are credentials, and the scheme word before one.
_SECRET_HEADER = re.compile(r"authorization|token|secret|api[-_]?key|password", re.IGNORECASE)
_AUTH_SCHEME = re.compile(r"^\s*(?:Bearer|Basic|Token)\s+", re.IGNORECASE)


def _secrets(models: Iterable[BaseModel]) -> Iterator[str]:
    """Every SecretStr value in the given settings, and every value of a header map under a
    secret-looking name (a sink's `Authorization: Bearer …`), so they are masked everywhere."""
    for model in models:
        for value in model.__dict__.values():
            if isinstance(value, dict):
                for key, item in value.items():
                    if isinstance(item, str) and _SECRET_HEADER.search(str(key)):
                        yield item
                        yield _AUTH_SCHEME.sub("", item)
                continue
            values = value if isinstance(value, tuple | list) else (value,)
            for item in values:
                if isinstance(item, SecretStr) and item.get_secret_value():
                    yield item.get_secret_value()
                elif isinstance(item, BaseModel):
                    yield from _secrets([item])
