"""The conformance suite every connector runs against itself.

In a plugin's tests::

    class TestPawoonConformance(WebhookConnectorConformance):
        connector = PawoonConnector
        settings = {"mode": "webhook", "webhook_secret": "test-secret"}

and pytest runs the checks below: installed through its entry point, examples that verify and
map to well-formed records, tampered or unsigned requests refused, strict settings. There is a
class for each thing a plugin can write: `WebhookConnectorConformance` (and
`HmacWebhookConnectorConformance`), `PollConnectorConformance`,
`FileDropConnectorConformance` and `SinkConformance`.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import structlog
from pydantic import BaseModel, ValidationError

from sambung.auth.signing import sign_hex
from sambung.clock import SystemClock
from sambung.config import Connection, LoadedConfig
from sambung.connectors import (
    Connector,
    ConnectorSettings,
    FileDropConnector,
    FileDropSettings,
    HmacWebhookSettings,
    Mode,
    PollConnector,
    PollSettings,
    WebhookConnector,
    WebhookRequest,
)
from sambung.delivery.sinks import (
    Delivery,
    DeliveryResult,
    Sink,
    SinkContext,
    SinkSettings,
    is_delivered,
)
from sambung.errors import FileError, InvalidPayload, RetriableError, SignatureError
from sambung.intake.backfill import BackfillService
from sambung.intake.csvbatches import open_for, records_of
from sambung.intake.csvfiles import RowError
from sambung.intake.polling import PollLoop, PollService
from sambung.models import RECORD_KINDS, Outlet, Payment, PaymentStatus, Record
from sambung.plugins import load_plugins
from sambung.store import BackfillState, Store
from sambung.store.sqlite import SqliteStore

from . import make_connector, outlet
from .fake_vendor import FakeClock

EXAMPLES = range(1, 31)


class WebhookConnectorConformance:
    """Standard checks for a webhook connector; subclass and set `connector` and `settings`."""

    connector: ClassVar[type[WebhookConnector[ConnectorSettings]]]
    settings: ClassVar[dict[str, Any]]
    # Not Jakarta on purpose: a mapping that assumes WIB shows up as a wrong instant.
    timezone: ClassVar[str] = "Asia/Makassar"
    # False for a vendor that authenticates the sender but does not sign the body (Xendit's
    # callback token): a changed body cannot be told apart, and the suite checks exactly that.
    signs_body: ClassVar[bool] = True

    @pytest.fixture
    def instance(self) -> WebhookConnector[ConnectorSettings]:
        """The connector as core builds it, at an outlet in `timezone`."""
        return make_connector(
            self.connector, self.settings, at=outlet("conformance", self.timezone)
        )

    @pytest.fixture
    def examples(self, instance: WebhookConnector[ConnectorSettings]) -> list[WebhookRequest]:
        """The connector's example webhooks (it must offer some)."""
        found = [instance.example_webhook(n) for n in EXAMPLES]
        requests = [request for request in found if request is not None]
        assert requests, (
            f"{self.connector.name} offers no example_webhook(); the simulator and "
            "these checks need them"
        )
        return requests

    def test_is_found_through_its_entry_point(self) -> None:
        registry = load_plugins()
        assert registry.connectors.get(self.connector.name) is self.connector, registry.failures

    def test_examples_verify_and_map_to_well_formed_records(
        self, instance: WebhookConnector[ConnectorSettings], examples: list[WebhookRequest]
    ) -> None:
        mapped = 0
        for request in examples:
            instance.verify(request)
            event = instance.parse(request)
            assert event.event_type
            for record in event.records:
                _check_record(record, instance)
                mapped += 1
        assert mapped, "no example mapped to a record"

    def test_an_example_payment_pays_the_order_it_names(
        self, instance: WebhookConnector[ConnectorSettings]
    ) -> None:
        """A gateway's `example_payment` (optional) verifies and maps to a collected payment of
        that reference and amount, dated by its paid time in the outlet's timezone."""
        paid_at = datetime(2026, 11, 20, 23, 30, tzinfo=ZoneInfo("Asia/Jakarta"))
        request = instance.example_payment(
            7, reference="TRX-42", amount=Decimal("27500"), method="qris", paid_at=paid_at
        )
        if request is None:
            return  # not a gateway, or no examples: nothing to check
        instance.verify(request)
        [payment] = [r for r in instance.parse(request).records if isinstance(r, Payment)]
        assert (payment.reference, payment.amount) == ("TRX-42", Decimal("27500"))
        assert payment.status in (PaymentStatus.PAID, PaymentStatus.SETTLED)
        assert payment.paid_at == paid_at
        assert payment.business_date == paid_at.astimezone(ZoneInfo(self.timezone)).date()

    def test_mapping_is_deterministic(
        self, instance: WebhookConnector[ConnectorSettings], examples: list[WebhookRequest]
    ) -> None:
        for request in examples:
            first = [r.fingerprint() for r in instance.parse(request).records]
            fresh = WebhookRequest(body=request.body, headers=request.headers)
            assert first == [r.fingerprint() for r in instance.parse(fresh).records]

    def test_a_tampered_body_is_refused_when_bodies_are_signed(
        self, instance: WebhookConnector[ConnectorSettings], examples: list[WebhookRequest]
    ) -> None:
        request = examples[0]
        tampered = WebhookRequest(body=request.body + b" ", headers=request.headers)
        if self.signs_body:
            with pytest.raises(SignatureError):
                instance.verify(tampered)
        else:
            # A sender token covers no body: the connector must say so (signs_body = False)
            # rather than let anyone believe a changed body would be caught.
            instance.verify(tampered)

    def unsigned(self, request: WebhookRequest) -> WebhookRequest:
        """`request` without what authenticates it: its headers, unless the vendor signs inside
        the body (Midtrans's `signature_key`), where a subclass strips that instead."""
        return WebhookRequest(body=request.body, headers={})

    def test_a_request_without_headers_is_refused(
        self, instance: WebhookConnector[ConnectorSettings], examples: list[WebhookRequest]
    ) -> None:
        with pytest.raises(SignatureError):
            instance.verify(self.unsigned(examples[0]))

    def test_a_signed_body_that_is_not_json_is_an_invalid_payload(
        self, instance: WebhookConnector[ConnectorSettings], examples: list[WebhookRequest]
    ) -> None:
        body = b"<html>502 Bad Gateway</html>"
        sign = getattr(instance, "sign", None)
        request = WebhookRequest(body=body, headers=sign(body) if sign else examples[0].headers)
        with pytest.raises(InvalidPayload):
            instance.parse(request)

    def test_settings_refuse_unknown_options(self) -> None:
        with pytest.raises(ValidationError):
            self.connector.Settings.model_validate({**self.settings, "no_such_option": 1})

    def test_signed_bodies_verify_and_keep_their_bytes(
        self, instance: WebhookConnector[ConnectorSettings], examples: list[WebhookRequest]
    ) -> None:
        # What the hostile-input harness relies on to reach the parser with the bodies it makes.
        for request in examples:
            signed = instance.signed(request.body)
            if signed is None:
                pytest.skip(f"{self.connector.name} offers no signed(): fuzzing stops at verify")
            instance.verify(signed)
            assert signed.body == request.body, "signed() changed more than its signature"


def _check_record(record: Record, connector: Connector[ConnectorSettings]) -> None:
    assert record.outlet == connector.outlet.id
    assert record.source_system == connector.name
    occurred = getattr(record, "occurred_at", None)
    if occurred is not None:
        assert occurred.utcoffset() == timedelta(0)
        local_day = occurred.astimezone(connector.outlet.timezone).date()
        assert getattr(record, "business_date", None) == local_day
    _no_floats(record)


def _no_floats(model: BaseModel) -> None:
    for name, value in model:
        values = value if isinstance(value, tuple) else (value,)
        for item in values:
            assert not isinstance(item, float), f"{name} is a float; money must be Decimal"
            if isinstance(item, BaseModel):
                _no_floats(item)
            if isinstance(item, Decimal):
                assert item.is_finite(), f"{name} is not finite"


class PollConnectorConformance:
    """Standard checks for a poll connector, run against the plugin's own fake vendor.

    Subclass, set `connector`, and write `fake(clock)` (a `FakeVendor` with a
    `seed(count, start)` method) and `settings(url)` (the YAML block pointing at the fake). A
    vendor with no list API, whose poll asks only about what the store already knows
    (`context.known`), also writes `prepare(store, vendor, at)` to store that first.
    """

    connector: ClassVar[type[PollConnector[PollSettings]]]
    timezone: ClassVar[str] = "Asia/Makassar"

    def fake(self, clock: FakeClock) -> Any:
        """The plugin's fake vendor, on `clock`."""
        raise NotImplementedError

    def settings(self, url: str) -> dict[str, Any]:
        """A poll block for the fake at `url`."""
        raise NotImplementedError

    async def prepare(self, store: Store, vendor: Any, at: Outlet) -> None:
        """Before the first poll, what the store must hold for the poll to ask about the seeded
        rows (default: nothing; a vendor that lists what changed needs nothing)."""

    def test_is_found_through_its_entry_point(self) -> None:
        registry = load_plugins()
        assert registry.connectors.get(self.connector.name) is self.connector, registry.failures

    def test_declares_poll_mode(self) -> None:
        assert Mode.POLL in self.connector.modes

    def test_settings_refuse_unknown_options(self) -> None:
        with pytest.raises(ValidationError):
            self.connector.Settings.model_validate(
                {**self.settings("http://127.0.0.1:9"), "no_such_option": 1}
            )

    @asynccontextmanager
    async def _seeded(self, tmp_path: Path, start: datetime) -> AsyncIterator[_Seeded]:
        """75 rows at the fake from `start`, and the connection's loop, wired as the daemon
        wires it (backfills included), its clock three hours on."""
        clock = FakeClock(start + timedelta(hours=3))
        vendor = self.fake(clock)
        vendor.seed(75, start)
        store = SqliteStore(tmp_path / "conformance.db", synchronous="OFF")
        await store.open()
        try:
            at = outlet("conformance", self.timezone)
            await self.prepare(store, vendor, at)
            async with vendor.serve() as url, aiohttp.ClientSession() as session:
                connection = Connection(
                    at, self.connector, self.connector.Settings.model_validate(self.settings(url))
                )
                # Backfill tasks are made directly (a request reads the daemon's config) and
                # run by the connection's loop, as in the daemon.
                backfills = BackfillService(store, _no_config, clock=clock)
                [loop] = PollService(
                    [connection],
                    store,
                    lambda _o, _k: ("sink",),
                    clock=clock,
                    sleep=clock.sleep,
                    backfills=backfills,
                ).build(session)
                yield _Seeded(store, loop, clock)
        finally:
            await store.close()

    async def test_polls_well_formed_records_and_the_overlap_adds_nothing(
        self, tmp_path: Path
    ) -> None:
        async with self._seeded(tmp_path, datetime(2026, 11, 26, 1, 0, tzinfo=UTC)) as seeded:
            store, loop, clock = seeded.store, seeded.loop, seeded.clock
            first = await loop.run_once()
            outbox = len(await store.list_outbox(limit=10_000))
            clock.advance(600)
            second = await loop.run_once()
            assert first.status.value == "ok", first.error
            assert second.status.value == "ok", second.error
            records = await store.list_records(limit=10_000)
            assert len(records) == first.records == outbox > 0
            assert len(await store.list_outbox(limit=10_000)) == outbox, "overlap duplicated"
            for stored in records:
                kind = RECORD_KINDS[stored.kind]
                record = kind.model_validate_json(stored.payload)
                _check_record(record, loop.connector)

    async def test_a_backfill_re_reads_its_window_and_queues_nothing_new(
        self, tmp_path: Path
    ) -> None:
        start = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)
        async with self._seeded(tmp_path, start) as seeded:
            store, loop, clock = seeded.store, seeded.loop, seeded.clock
            first = await loop.run_once()
            cursor = await store.get_cursor_state(loop.outlet, loop.name)
            outbox = len(await store.list_outbox(limit=10_000))
            clock.advance(600)
            task = await store.create_backfill(
                loop.outlet, loop.name, start - timedelta(hours=1), clock.now(), "test"
            )
            while await loop.run_backfills():
                pass
            assert first.status.value == "ok", first.error
            done = await store.get_backfill(task.id)
            assert done is not None and done.state is BackfillState.DONE, done
            assert (done.records_new, done.records_changed) == (0, 0), done
            assert done.pages > 0
            assert len(await store.list_outbox(limit=10_000)) == outbox, "unchanged queued"
            assert await store.get_cursor_state(loop.outlet, loop.name) == cursor


@dataclass(frozen=True)
class _Seeded:
    """What `PollConnectorConformance._seeded` yields."""

    store: SqliteStore
    loop: PollLoop
    clock: FakeClock


def _no_config() -> LoadedConfig:
    raise NotImplementedError("the conformance suite makes its backfill tasks itself")


class HmacWebhookConnectorConformance(WebhookConnectorConformance):
    """The standard checks plus those of the hex-HMAC scheme (`HmacWebhookConnector`)."""

    def _with(self, **changes: Any) -> WebhookConnector[ConnectorSettings]:
        return make_connector(
            self.connector, {**self.settings, **changes}, at=outlet("conformance", self.timezone)
        )

    def _signed(self, body: bytes, secret: str, header: str) -> WebhookRequest:
        return WebhookRequest(body=body, headers={header: sign_hex(secret, body)})

    @staticmethod
    def _hmac(instance: WebhookConnector[ConnectorSettings]) -> HmacWebhookSettings:
        settings = instance.settings
        assert isinstance(settings, HmacWebhookSettings), "Settings must extend HmacWebhookSettings"
        return settings

    def test_a_signature_under_another_secret_is_refused(
        self, instance: WebhookConnector[ConnectorSettings], examples: list[WebhookRequest]
    ) -> None:
        header = self._hmac(instance).signature_header
        with pytest.raises(SignatureError):
            instance.verify(self._signed(examples[0].body, "some-other-secret", header))

    def test_a_signature_that_is_not_hex_is_refused(
        self, instance: WebhookConnector[ConnectorSettings], examples: list[WebhookRequest]
    ) -> None:
        headers = {self._hmac(instance).signature_header: "sha256=not-hex"}
        with pytest.raises(SignatureError, match="not hex"):
            instance.verify(WebhookRequest(body=examples[0].body, headers=headers))

    def test_while_rotating_both_secrets_are_accepted(self, examples: list[WebhookRequest]) -> None:
        rotating = self._with(webhook_secret=["new-secret", "old-secret"])
        header = self._hmac(rotating).signature_header
        for secret in ("new-secret", "old-secret"):
            rotating.verify(self._signed(examples[0].body, secret, header))
        with pytest.raises(SignatureError):
            rotating.verify(self._signed(examples[0].body, "retired-secret", header))

    def test_the_signature_header_is_configurable(self, examples: list[WebhookRequest]) -> None:
        custom = self._with(signature_header="X-Custom-Signature")
        secret = self._hmac(custom).webhook_secret[0].get_secret_value()
        custom.verify(self._signed(examples[0].body, secret, "X-Custom-Signature"))
        with pytest.raises(SignatureError):
            default = type(custom).Settings.model_fields["signature_header"].default
            custom.verify(self._signed(examples[0].body, secret, default))


class FileDropConnectorConformance:
    """Standard checks for a file-drop connector, run on its own `example_file` exports.

    Subclass and set `connector` and `settings` (a YAML block turning file-drop mode on). Files
    are read as core reads them: its CSV opener, the connection's number style, its mapping.
    """

    connector: ClassVar[type[FileDropConnector[FileDropSettings]]]
    settings: ClassVar[dict[str, Any]]
    timezone: ClassVar[str] = "Asia/Makassar"

    @pytest.fixture
    def instance(self) -> FileDropConnector[FileDropSettings]:
        """The connector as core builds it, at an outlet in `timezone`."""
        return make_connector(
            self.connector, self.settings, at=outlet("conformance", self.timezone)
        )

    @pytest.fixture
    def export(self, instance: FileDropConnector[FileDropSettings]) -> bytes:
        """One of the connector's example exports (it must offer some)."""
        found = instance.example_file(1)
        assert found, f"{self.connector.name} offers no example_file(); the demo and these need it"
        return found

    def rows(
        self, instance: FileDropConnector[FileDropSettings], export: bytes
    ) -> list[Record | RowError]:
        """Every row of `export` as core's file-drop runner maps it."""
        return list(records_of(instance, open_for(instance, io.BytesIO(export))))

    def test_is_found_through_its_entry_point(self) -> None:
        registry = load_plugins()
        assert registry.connectors.get(self.connector.name) is self.connector, registry.failures

    def test_declares_file_drop_mode_with_its_settings(self) -> None:
        assert Mode.FILE_DROP in self.connector.modes
        assert issubclass(self.connector.Settings, FileDropSettings)

    def test_settings_refuse_unknown_options(self) -> None:
        with pytest.raises(ValidationError):
            self.connector.Settings.model_validate({**self.settings, "no_such_option": 1})

    def test_an_example_export_maps_to_well_formed_records(
        self, instance: FileDropConnector[FileDropSettings], export: bytes
    ) -> None:
        rows = self.rows(instance, export)
        errors = [row for row in rows if isinstance(row, RowError)]
        assert not errors, f"the connector's own example has bad rows: {errors[:3]}"
        assert rows, "the example export mapped to no record"
        for record in rows:
            assert isinstance(record, Record)
            _check_record(record, instance)

    def test_mapping_a_file_again_gives_the_same_records(
        self, instance: FileDropConnector[FileDropSettings], export: bytes
    ) -> None:
        # An upload of a file already dropped, or a replay, must upsert onto the same rows.
        first = [
            row.fingerprint() for row in self.rows(instance, export) if isinstance(row, Record)
        ]
        again = [
            row.fingerprint() for row in self.rows(instance, export) if isinstance(row, Record)
        ]
        assert first == again

    def test_a_bad_row_is_a_row_error_and_the_others_still_map(
        self, instance: FileDropConnector[FileDropSettings]
    ) -> None:
        export = instance.example_file(2, bad_row=True)
        assert export, f"{self.connector.name}: example_file(bad_row=True) offers no export"
        rows = self.rows(instance, export)
        errors = [row for row in rows if isinstance(row, RowError)]
        assert errors, "a bad row was not reported as a RowError"
        assert all(error.row >= 2 for error in errors), "row numbers count the header as row 1"
        assert any(isinstance(row, Record) for row in rows), "one bad row lost the good ones"

    def test_a_header_alone_is_no_records_and_no_errors(
        self, instance: FileDropConnector[FileDropSettings], export: bytes
    ) -> None:
        header = export.splitlines(keepends=True)[0]
        assert self.rows(instance, header) == []

    def test_bytes_that_are_not_an_export_are_a_file_error_or_row_errors(
        self, instance: FileDropConnector[FileDropSettings]
    ) -> None:
        # Never an exception core does not expect: the runner moves such a file to failed/.
        try:
            rows = self.rows(instance, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\xff\xfe")
        except FileError:
            return
        assert all(isinstance(row, RowError) for row in rows), "garbage mapped to records"


class SinkConformance:
    """Standard checks for a sink, run against the plugin's own fake of its destination.

    Subclass, set `sink`, and write `destination(tmp_path)`: an async context manager that
    serves the destination (a fake vendor, a receiver, a folder) and yields the sink's YAML
    block pointing at it. A sink with a network destination also writes `unreachable()`, a
    block pointing where nothing listens. `records()` are what is delivered (three sales by
    default; a sink that takes other kinds, per `record_kinds()`, overrides it).
    """

    sink: ClassVar[type[Sink[SinkSettings]]]

    def destination(self, tmp_path: Path) -> AbstractAsyncContextManager[dict[str, Any]]:
        """Serve the destination for one test and yield the settings that point at it."""
        raise NotImplementedError

    def unreachable(self) -> dict[str, Any] | None:
        """Settings pointing at a destination that does not answer; None: it cannot be down."""
        return None

    def records(self) -> list[Record]:
        """What the checks deliver."""
        from .accounting import days_ago, sale

        return [
            sale(f"CONF-{n}", at=days_ago(1, 10 + n), items=[("KOP-001", "Kopi", 2, 25000)])
            for n in range(1, 4)
        ]

    def deliveries(self, *, attempt: int = 1) -> list[Delivery]:
        """`records()` as the outbox hands them to the sink (stable ids across attempts)."""
        from .accounting import delivery_of

        return [
            replace(
                delivery_of(record.to_json(), id=f"msg_conf_{n}", attempt=attempt),
                outbox_id=n,
                record_id=n,
                sink="conformance",
            )
            for n, record in enumerate(self.records(), start=1)
        ]

    @asynccontextmanager
    async def opened(
        self, settings: dict[str, Any], tmp_path: Path
    ) -> AsyncIterator[Sink[SinkSettings]]:
        """The sink as the dispatcher builds it from `settings`, opened, closed afterwards."""
        validated = self.sink.Settings.model_validate(settings)
        async with aiohttp.ClientSession() as session:
            context = SinkContext(
                name="conformance",
                settings=validated,
                clock=SystemClock(),
                session=session,
                base_dir=tmp_path,
                log=structlog.get_logger().bind(sink="conformance"),
            )
            instance = self.sink(context)
            await instance.open()
            try:
                yield instance
            finally:
                await instance.close()

    async def deliver_all(
        self, instance: Sink[SinkSettings], batch: list[Delivery]
    ) -> list[DeliveryResult]:
        """`batch` delivered in chunks of the sink's `max_batch`, one result per item."""
        results: list[DeliveryResult] = []
        for start in range(0, len(batch), instance.max_batch):
            chunk = batch[start : start + instance.max_batch]
            answered = await instance.deliver(chunk)
            assert len(answered) == len(chunk), "deliver() must answer once per item, in order"
            results.extend(answered)
        return results

    def test_is_found_through_its_entry_point(self) -> None:
        registry = load_plugins()
        assert registry.sinks.get(self.sink.name) is self.sink, registry.failures

    def test_takes_batches_of_at_least_one(self) -> None:
        assert isinstance(self.sink.max_batch, int) and self.sink.max_batch >= 1

    async def test_settings_refuse_unknown_options(self, tmp_path: Path) -> None:
        async with self.destination(tmp_path) as settings:
            with pytest.raises(ValidationError):
                self.sink.Settings.model_validate({**settings, "no_such_option": 1})

    async def test_delivers_every_item_of_a_batch(self, tmp_path: Path) -> None:
        async with self.destination(tmp_path) as settings, self.opened(settings, tmp_path) as sink:
            results = await self.deliver_all(sink, self.deliveries())
        assert all(is_delivered(r) for r in results), results

    async def test_a_retry_of_delivered_items_is_delivered_not_refused(
        self, tmp_path: Path
    ) -> None:
        # The outbox retries with the same id when an answer was lost: a sink must take the
        # repeat as done (an idempotency key, a 409 that means "already there").
        async with self.destination(tmp_path) as settings, self.opened(settings, tmp_path) as sink:
            await self.deliver_all(sink, self.deliveries())
            again = await self.deliver_all(sink, self.deliveries(attempt=2))
        assert all(is_delivered(r) for r in again), again

    async def test_an_unreachable_destination_is_retriable_per_item(self, tmp_path: Path) -> None:
        settings = self.unreachable()
        if settings is None:
            pytest.skip(f"{self.sink.name} has no network destination to be down")
        async with self.opened(settings, tmp_path) as sink:
            results = await self.deliver_all(sink, self.deliveries())
        for result in results:
            assert isinstance(result, RetriableError), f"not retriable: {result!r}"
