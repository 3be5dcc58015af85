"""One guard on every intake path: a connector's records are its own outlet's, or none is kept."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from sambung.clock import SystemClock
from sambung.connectors import WebhookEvent, WebhookRequest
from sambung.errors import InvalidRecord
from sambung.intake.csvfiles import CsvStream, RowError
from sambung.intake.csvimport import FileImporter
from sambung.intake.guard import ensure_own, rejection
from sambung.intake.webhooks import WebhookIngest
from sambung.models import Record
from sambung.store import DeadLetterQuery, Store
from sambung.testing import make_connector
from sambung_pawoon.connector import PawoonConnector

from .csvdata import pawoon_export


def test_only_the_connections_own_outlet_and_source_system_pass() -> None:
    ensure_own([("kemang", "pawoon"), ("kemang", "pawoon")], "kemang", "pawoon")
    for foreign in [("senopati", "pawoon"), ("kemang", "moka")]:
        with pytest.raises(InvalidRecord, match=f"{foreign[0]}/{foreign[1]}, expected kemang/"):
            ensure_own([("kemang", "pawoon"), foreign], "kemang", "pawoon")


def test_a_rejection_keeps_text_the_store_could_not() -> None:
    entry = rejection("ingest", "kemang", "pawoon", error_type="X", error="a\ud800b", field="f\x00")
    assert "\ud800" not in entry.error and "\x00" not in (entry.field or "")
    assert (entry.stage, entry.outlet, entry.connector) == ("ingest", "kemang", "pawoon")


class Misrouting(PawoonConnector):
    """A buggy plugin: every third record it maps is filed under another outlet."""

    def parse(self, request: WebhookRequest) -> WebhookEvent:
        event = super().parse(request)
        return dataclasses.replace(event, records=[_elsewhere(r) for r in event.records])

    def parse_file(self, stream: CsvStream) -> Iterator[Record | RowError]:
        for n, item in enumerate(super().parse_file(stream)):
            yield _elsewhere(item) if n % 3 == 2 and isinstance(item, Record) else item


def _elsewhere(record: Record) -> Record:
    return record.model_copy(update={"outlet": "senopati"})


async def test_a_file_whose_connector_maps_into_another_outlet_is_refused_whole(
    store: Store, tmp_path: Path
) -> None:
    connector = make_connector(Misrouting, {"mode": ["file-drop"], "webhook_secret": "s" * 16})
    path = tmp_path / "sales.csv"
    path.write_bytes(pawoon_export(20))
    importer = FileImporter(store, lambda outlet, kind: ("books",), SystemClock())

    report = await importer.import_path(connector, path)

    assert report.file_error is not None
    assert "mapped a record for senopati/pawoon, expected kemang/pawoon" in report.file_error
    assert await store.list_records(limit=100) == []


async def test_a_webhook_whose_connector_maps_into_another_outlet_is_a_dead_letter(
    store: Store,
) -> None:
    connector = make_connector(Misrouting, {"mode": "webhook", "webhook_secret": "s" * 16})
    request = connector.example_webhook(1)
    assert request is not None
    ingest = WebhookIngest(store, lambda outlet, kind: (), SystemClock(), lambda entry: None)

    answer = await ingest.handle(connector, request, "application/json")

    assert answer.status == 422
    [entry] = await store.find_dead_letters(DeadLetterQuery())
    assert entry.stage == "ingest" and "senopati/pawoon" in entry.error
    assert await store.list_records(limit=100) == []
