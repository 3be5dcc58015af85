"""The conformance suite every connector runs against itself.

In a plugin's tests::

    class TestPawoonConformance(WebhookConnectorConformance):
        connector = PawoonConnector
        settings = {"mode": "webhook", "webhook_secret": "test-secret"}

and pytest runs the checks below: installed through its entry point, examples that verify and
map to well-formed records, tampered or unsigned requests refused, strict settings.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
import pytest
from pydantic import BaseModel, ValidationError

from ..config import Connection
from ..connectors import (
    Connector,
    ConnectorSettings,
    HmacWebhookSettings,
    Mode,
    Outlet,
    PollConnector,
    PollSettings,
    WebhookConnector,
    WebhookRequest,
)
from ..errors import InvalidPayload, SignatureError
from ..models import RECORD_KINDS, Record
from ..plugins import load_plugins
from ..polling import PollService
from ..signing import sign_hex
from ..store import Store
from ..store.sqlite import SqliteStore
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

    async def test_polls_well_formed_records_and_the_overlap_adds_nothing(
        self, tmp_path: Path
    ) -> None:
        start = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)
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
                [loop] = PollService(
                    [connection], store, lambda _o, _k: ("sink",), clock=clock, sleep=clock.sleep
                ).build(session)
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
        finally:
            await store.close()


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
