"""The conformance suite catches what it promises to catch (run through pytester)."""

from __future__ import annotations

import pytest
from sambung.testing.conformance import FileDropConnectorConformance, SinkConformance

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


def failed_checks(pytester: pytest.Pytester, source: str) -> dict[str, set[str]]:
    """Run `source` through pytest; the checks that failed, by test class."""
    pytester.makepyfile(test_broken=source)
    result = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        "-o",
        "asyncio_default_fixture_loop_scope=function",
        "-o",
        "asyncio_mode=auto",
        "-rf",
    )
    failed: dict[str, set[str]] = {}
    for line in result.stdout.lines:
        if line.startswith("FAILED "):
            node = line.split()[1]
            _, cls, check = node.split("::")[:3]
            failed.setdefault(cls, set()).add(check.split("[")[0])
    return failed


def assert_each_check_caught(
    failed: dict[str, set[str]], expected: dict[str, str], suite: type
) -> None:
    """A correct but uninstalled implementation fails only the entry-point check; each broken
    one fails the check named for it; and together they make every check of `suite` fail."""
    entry = "test_is_found_through_its_entry_point"
    assert failed["TestGood"] == {entry}
    for cls, check in expected.items():
        assert check in failed.get(cls, set()), (cls, failed.get(cls))
    checks = {name for name in dir(suite) if name.startswith("test_")}
    assert checks == {entry, *expected.values()}, "a check no broken implementation fails"


FILE_DROP = '''
import uuid

from pydantic import ConfigDict
from sambung.plugin import (
    ConnectorSettings, FileDropConnector, FileDropSettings, RowError, Transaction, map_rows,
)
from sambung.testing.conformance import FileDropConnectorConformance


class Good(FileDropConnector[FileDropSettings]):
    """Right in every way but one: no plugin installs it."""

    name = "good_csv"
    outlet_id = None

    def transaction(self, row, id_at, at_at, total_at):
        occurred_at, business_date = row.moment(at_at)
        total = row.amount(total_at)
        return Transaction(
            outlet=self.outlet_id or self.outlet.id, source_system=self.name,
            external_id=self.external_id(row.text(id_at)), occurred_at=occurred_at,
            business_date=business_date, subtotal=total, total=total,
        )

    def external_id(self, given):
        return given

    def parse_file(self, stream):
        at = [stream.index(name) for name in ("id", "at", "total")]
        return map_rows(stream, lambda row: self.transaction(row, *at))

    def example_file(self, sequence, *, bad_row=False):
        rows = [f"S-{sequence}-{n},2026-11-26 10:0{n}:00,{15000 + n}" for n in range(3)]
        if bad_row:
            rows.insert(1, f"S-{sequence}-x,not a time,abc")
        return ("id,at,total\\n" + "\\n".join(rows) + "\\n").encode()


class PlainSettings(Good):
    Settings = ConnectorSettings


class LaxSettings(FileDropSettings):
    model_config = ConfigDict(extra="allow", frozen=True)


class Lax(Good):
    Settings = LaxSettings


class WrongOutlet(Good):
    outlet_id = "somewhere-else"


class RandomIds(Good):
    def external_id(self, given):
        return uuid.uuid4().hex


class SkipsBadRows(Good):
    def parse_file(self, stream):
        return (row for row in super().parse_file(stream) if not isinstance(row, RowError))


class ReportsTheHeader(Good):
    def parse_file(self, stream):
        yield RowError(row=1, column=None, reason="a header, reported as a row")
        yield from super().parse_file(stream)


class CrashesOnGarbage(Good):
    def parse_file(self, stream):
        if stream.header[0] != "id":
            raise KeyError("id")
        return super().parse_file(stream)


'''
FILE_DROP += "".join(
    f"class Test{name}(FileDropConnectorConformance):\n"
    f"    connector = {name}\n"
    '    settings = {"mode": "file-drop"}\n\n\n'
    for name in (
        "Good",
        "PlainSettings",
        "Lax",
        "WrongOutlet",
        "RandomIds",
        "SkipsBadRows",
        "ReportsTheHeader",
        "CrashesOnGarbage",
    )
)


def test_every_file_drop_check_fails_a_connector_that_breaks_it(pytester: pytest.Pytester) -> None:
    failed = failed_checks(pytester, FILE_DROP)
    expected = {
        "TestPlainSettings": "test_declares_file_drop_mode_with_its_settings",
        "TestLax": "test_settings_refuse_unknown_options",
        "TestWrongOutlet": "test_an_example_export_maps_to_well_formed_records",
        "TestRandomIds": "test_mapping_a_file_again_gives_the_same_records",
        "TestSkipsBadRows": "test_a_bad_row_is_a_row_error_and_the_others_still_map",
        "TestReportsTheHeader": "test_a_header_alone_is_no_records_and_no_errors",
        "TestCrashesOnGarbage": "test_bytes_that_are_not_an_export_are_a_file_error_or_row_errors",
    }
    assert_each_check_caught(failed, expected, FileDropConnectorConformance)


SINKS = '''
from contextlib import asynccontextmanager

from pydantic import ConfigDict
from sambung.plugin import DeliveryRejected, RetriableError, Sink, SinkSettings
from sambung.testing.conformance import SinkConformance


class MemorySettings(SinkSettings):
    down: bool = False


class Good(Sink[MemorySettings]):
    """Right in every way but one: no plugin installs it."""

    name = "memory"
    max_batch = 2

    async def open(self):
        self.seen = set()

    async def deliver(self, batch):
        if self.settings.down:
            return [RetriableError("the destination is down") for _ in batch]
        self.seen.update(item.id for item in batch)
        return [None] * len(batch)


class NoBatch(Good):
    max_batch = 0


class LaxSettings(MemorySettings):
    model_config = ConfigDict(extra="allow", frozen=True)


class Lax(Good):
    Settings = LaxSettings


class AnswersOnce(Good):
    async def deliver(self, batch):
        return [None]


class RefusesRetries(Good):
    async def deliver(self, batch):
        if any(item.id in self.seen for item in batch):
            return [DeliveryRejected("seen that id before") for _ in batch]
        return await super().deliver(batch)


class GivesUpWhenDown(Good):
    async def deliver(self, batch):
        if self.settings.down:
            return [DeliveryRejected("down, so never") for _ in batch]
        return await super().deliver(batch)


'''
SINKS += "".join(
    f"class Test{name}(SinkConformance):\n"
    f"    sink = {name}\n\n"
    "    @asynccontextmanager\n"
    "    async def destination(self, tmp_path):\n"
    "        yield {}\n\n"
    "    def unreachable(self):\n"
    '        return {"down": True}\n\n\n'
    for name in ("Good", "NoBatch", "Lax", "AnswersOnce", "RefusesRetries", "GivesUpWhenDown")
)


def test_every_sink_check_fails_a_sink_that_breaks_it(pytester: pytest.Pytester) -> None:
    failed = failed_checks(pytester, SINKS)
    expected = {
        "TestNoBatch": "test_takes_batches_of_at_least_one",
        "TestLax": "test_settings_refuse_unknown_options",
        "TestAnswersOnce": "test_delivers_every_item_of_a_batch",
        "TestRefusesRetries": "test_a_retry_of_delivered_items_is_delivered_not_refused",
        "TestGivesUpWhenDown": "test_an_unreachable_destination_is_retriable_per_item",
    }
    assert_each_check_caught(failed, expected, SinkConformance)
