"""The `nats` sink: publish each delivery to NATS JetStream and wait for the stream's ack.

Every message carries the delivery's idempotency key as `Nats-Msg-Id`, so JetStream drops a
redelivery (a crash mid-batch, an ack lost on the way back) within the stream's duplicate
window; an ack saying `duplicate` counts as delivered.

The outbox is the only buffer. The client never reconnects or buffers on its own
(`allow_reconnect=False`): while NATS is down a publish fails at once as a `RetriableError`,
the outbox backs off, and the next delivery after NATS returns connects afresh. A client left
to reconnect would hold publishes in memory, invisible to the outbox, and answer them late or
never. Publishes in flight are bounded by `max_in_flight`, and a batch is settled only once
every ack is in, so a slow stream slows the dispatcher instead of piling up messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import string
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BeforeValidator, Field, SecretStr, field_validator, model_validator

from sambung.connectors import Duration
from sambung.errors import ConfigError, DeliveryRejected, RetriableError

from . import Delivery, DeliveryResult, Sink, SinkSettings

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js import JetStreamContext

# What a subject template may name: fields of the delivery.
SUBJECT_FIELDS = frozenset({"outlet", "kind", "source_system", "sink", "event_type"})
_STREAM_NAME = re.compile(r"^[A-Za-z0-9_-]{1,255}$")


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def subject_fields(template: str) -> set[str]:
    """The `{names}` a subject template uses."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def stream_subjects(template: str) -> tuple[str, ...]:
    """The subjects a created stream captures by default: the template's literal leading tokens
    then `>` (`sambung.{outlet}.{kind}` → `sambung.>`)."""
    literal = []
    for token in template.split("."):
        if "{" in token:
            break
        literal.append(token)
    if not literal:
        raise ValueError("the subject starts with a {field}: set `subjects` for the stream")
    return (".".join([*literal, ">"]),)


class NatsSettings(SinkSettings):
    """Where to publish, and the stream that stores it."""

    servers: Annotated[tuple[str, ...], BeforeValidator(_as_list)] = ("nats://127.0.0.1:4222",)
    subject: str = "sambung.{outlet}.{kind}"
    # The stream the subjects belong to: each publish expects it, and it is checked (or
    # created, with `create_stream`) on connecting.
    stream: str | None = None
    create_stream: bool = False
    # For a created stream: its subjects (default: the subject's literal prefix and `>`) and
    # how long JetStream remembers message ids to drop redeliveries. Long enough to cover
    # the outbox's retries after a lost ack; ids are kept in the server's memory that long.
    subjects: tuple[str, ...] | None = None
    duplicate_window: Duration = timedelta(days=1)
    ack_timeout_seconds: float = Field(5.0, gt=0, le=300)
    connect_timeout_seconds: float = Field(2.0, gt=0, le=60)
    max_in_flight: int = Field(256, ge=1, le=65_536)
    user: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None

    @field_validator("subject")
    @classmethod
    def _known_fields(cls, value: str) -> str:
        unknown = subject_fields(value) - SUBJECT_FIELDS
        if unknown:
            known = ", ".join(sorted(SUBJECT_FIELDS))
            raise ValueError(f"unknown field(s) {sorted(unknown)}; use {known}")
        if not value or " " in value or value.startswith(".") or value.endswith("."):
            raise ValueError("not a NATS subject")
        return value

    @field_validator("stream")
    @classmethod
    def _stream_name(cls, value: str | None) -> str | None:
        if value is not None and not _STREAM_NAME.match(value):
            raise ValueError("a stream name is letters, digits, - and _")
        return value

    @model_validator(mode="after")
    def _creatable(self) -> NatsSettings:
        if self.create_stream and self.stream is None:
            raise ValueError("create_stream needs `stream` (the name to create)")
        if self.create_stream and self.subjects is None:
            stream_subjects(self.subject)  # raises when none can be derived
        return self


class NatsSink(Sink[NatsSettings]):
    """Publishes `Delivery.body()` to a JetStream subject, deduplicated by `Nats-Msg-Id`."""

    name = "nats"
    # Several items per call: they are published concurrently (within `max_in_flight`).
    max_batch = 64

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._client: Client | None = None
        self._js: JetStreamContext | None = None
        self._lock = asyncio.Lock()
        self._in_flight = asyncio.Semaphore(self.settings.max_in_flight)
        self._down_logged = False
        self._closing = False  # our own close is not an outage worth a warning

    async def open(self) -> None:
        """Connect and check the stream; NATS being down only delays delivery, but a missing
        stream that we may not create refuses to start (`ConfigError`)."""
        with contextlib.suppress(RetriableError):  # logged once by _connect
            await self._connection()

    async def close(self) -> None:
        """Flush and close the connection."""
        await self._drop()

    async def deliver(self, batch: Sequence[Delivery]) -> list[DeliveryResult]:
        """Publish each item and wait for its ack; one result per item."""
        try:
            js = await self._connection()
        except ConfigError as err:  # the stream went away while we ran: fix it, and we go on
            return [RetriableError(str(err))] * len(batch)
        except RetriableError as err:
            return [err] * len(batch)
        return list(await asyncio.gather(*(self._publish(js, item) for item in batch)))

    def subject_for(self, item: Delivery) -> str:
        """The subject `item` is published on."""
        return str(self.settings.subject).format(
            outlet=item.outlet,
            kind=item.kind,
            source_system=item.source_system,
            sink=item.sink,
            event_type=item.event_type,
        )

    async def _publish(self, js: JetStreamContext, item: Delivery) -> DeliveryResult:
        import nats.errors
        import nats.js.errors

        subject = self.subject_for(item)
        async with self._in_flight:
            client = self._client
            if client is None or not client.is_connected:
                # Never hand a message to a client that is not connected: it would buffer it.
                return RetriableError("NATS connection lost")
            try:
                ack = await js.publish(
                    subject,
                    item.body(),
                    timeout=self.settings.ack_timeout_seconds,
                    stream=self.settings.stream,
                    headers={"Nats-Msg-Id": item.id},
                )
            except nats.js.errors.NoStreamResponseError:
                return RetriableError(
                    f"no JetStream stream captures subject {subject!r}: create one or set "
                    f"sinks.{self.context.name}.create_stream"
                )
            except nats.js.errors.APIError as err:
                return _api_error(err, subject)
            except nats.errors.MaxPayloadError:
                return DeliveryRejected(f"{len(item.body())} bytes exceed NATS's max payload")
            except (TimeoutError, nats.errors.TimeoutError):
                return RetriableError(
                    f"no JetStream ack within {self.settings.ack_timeout_seconds:g}s"
                )
            except (nats.errors.Error, OSError) as err:
                return RetriableError(f"NATS publish failed: {type(err).__name__} {err}".strip())
        if ack.duplicate:
            self.log.debug("nats.duplicate_dropped", delivery_id=item.id, seq=ack.seq)
        return None

    async def _connection(self) -> JetStreamContext:
        """The connected JetStream context, connecting (once, for every caller) if needed."""
        if self._js is not None and self._client is not None and self._client.is_connected:
            return self._js
        async with self._lock:
            if self._js is not None and self._client is not None and self._client.is_connected:
                return self._js
            await self._drop()
            client, js = await self._connect()
            try:
                await self._ensure_stream(js)
            except BaseException:
                await self._close(client)
                raise
            self._client, self._js = client, js
            if self._down_logged:
                self.log.info("nats.reconnected")
            self._down_logged = False
            return js

    async def _connect(self) -> tuple[Client, JetStreamContext]:
        import nats
        import nats.errors

        settings = self.settings

        async def on_error(err: Exception) -> None:
            self.log.debug("nats.client_error", error=f"{type(err).__name__}: {err}")

        async def on_disconnect() -> None:
            if self._closing:
                return
            self.log.warning("nats.disconnected", hint="deliveries retry until it is back")
            self._down_logged = True

        options: dict[str, Any] = {}
        if settings.user is not None:
            options["user"] = settings.user
        if settings.password is not None:
            options["password"] = settings.password.get_secret_value()
        if settings.token is not None:
            options["token"] = settings.token.get_secret_value()
        try:
            client = await nats.connect(
                servers=list(settings.servers),
                name=f"sambung:{self.context.name}",
                allow_reconnect=False,
                # Bounds the first connect too: without a limit nats-py retries it for ever.
                max_reconnect_attempts=1,
                reconnect_time_wait=0.1,
                connect_timeout=settings.connect_timeout_seconds,
                error_cb=on_error,
                disconnected_cb=on_disconnect,
                **options,
            )
        except (OSError, TimeoutError, nats.errors.Error) as err:
            if not self._down_logged:
                self._down_logged = True
                self.log.warning("nats.unreachable", error=f"{type(err).__name__}: {err}")
            raise RetriableError(f"NATS unreachable: {type(err).__name__} {err}".strip()) from err
        return client, client.jetstream(timeout=settings.ack_timeout_seconds)

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        """Check that the configured stream exists, creating it when told to."""
        import nats.errors
        import nats.js.errors

        settings = self.settings
        if settings.stream is None:
            return
        try:
            await js.stream_info(settings.stream)
            return
        except nats.js.errors.NotFoundError:
            if not settings.create_stream:
                raise ConfigError(
                    f"sinks.{self.context.name}.stream: JetStream has no stream "
                    f"{settings.stream!r}; create it, or set create_stream: true"
                ) from None
        except (nats.errors.Error, OSError) as err:
            raise RetriableError(f"JetStream did not answer: {type(err).__name__} {err}") from err
        subjects = settings.subjects or stream_subjects(settings.subject)
        try:
            await js.add_stream(
                name=settings.stream,
                subjects=list(subjects),
                duplicate_window=settings.duplicate_window.total_seconds(),
            )
        except nats.js.errors.BadRequestError as err:
            raise ConfigError(
                f"sinks.{self.context.name}.stream: JetStream refused to create "
                f"{settings.stream!r}: {err.description}"
            ) from err
        except (nats.errors.Error, OSError) as err:
            raise RetriableError(f"could not create the stream: {err}") from err
        self.log.info("nats.stream_created", stream=settings.stream, subjects=list(subjects))

    async def _drop(self) -> None:
        client, self._client, self._js = self._client, None, None
        if client is not None:
            await self._close(client)

    async def _close(self, client: Client) -> None:
        if client.is_closed:
            return
        self._closing = True
        try:
            await client.close()
        except Exception as err:  # closing a broken connection: nothing left to save
            self.log.debug("nats.close_failed", error=str(err))
        finally:
            self._closing = False


def _api_error(err: Any, subject: str) -> DeliveryResult:
    """JetStream refused a publish: retriable when it is busy or unavailable, else for good."""
    code = err.code or 0
    message = f"JetStream refused {subject!r}: {err.description or err} (code {code})"
    if code >= 500 or code in (408, 429) or code == 0:
        return RetriableError(message)
    return DeliveryRejected(message, status=code)
