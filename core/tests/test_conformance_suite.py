"""The conformance suite catches what it promises to catch (run through pytester)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

BROKEN = """
from sambung.connectors import HmacWebhookConnector, HmacWebhookSettings, WebhookEvent
from sambung.models import Transaction
from sambung.parse import business_date, timestamp
from sambung.testing.conformance import WebhookConnectorConformance


class Lenient(HmacWebhookConnector):
    name = "lenient"

    def verify(self, request):  # accepts anything: the suite must notice
        return None

    def parse(self, request):
        payload = request.payload
        when = timestamp(payload["at"], self.outlet.timezone, "at")
        return WebhookEvent("sale", [Transaction(
            outlet=self.outlet.id, source_system=self.name, external_id=payload["id"],
            occurred_at=when, business_date=business_date(when, self.outlet.timezone),
            subtotal=payload["total"], total=payload["total"])])

    def example_body(self, sequence):
        return b'{"id": "S-%d", "at": "2026-11-26 10:00:00", "total": 15000}' % sequence


class TestLenient(WebhookConnectorConformance):
    connector = Lenient
    settings = {"mode": "webhook", "webhook_secret": "s"}
"""


def test_the_suite_fails_a_connector_that_verifies_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_lenient=BROKEN)
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "-o", "asyncio_default_fixture_loop_scope=function"
    )
    outcomes = result.parseoutcomes()
    # Not installed through an entry point, accepts tampered and unsigned bodies.
    result.assert_outcomes(passed=outcomes.get("passed", 0), failed=3)
    result.stdout.fnmatch_lines(
        [
            "*test_is_found_through_its_entry_point*",
            "*test_a_tampered_body_is_refused_when_bodies_are_signed*",
            "*test_a_request_without_headers_is_refused*",
        ]
    )
