"""A CSV export read as batches of mapped records: the CPU half of an import.

Pure work on rows (decode, map, serialise, fingerprint) that runs wherever `csvworker` puts it
(a thread, or a forked worker process), never on the event loop. A batch travels between
processes as columns of plain values (see `Batch`).
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice, repeat
from pathlib import Path
from typing import Any, BinaryIO

from sambung.connectors import FileDropConnector, FileDropSettings
from sambung.errors import FileError
from sambung.models import Record, SerializedRecord

from .csvfiles import CsvStream, NumberStyle, RowError, open_csv
from .generic_csv import amount_headers, parse_generic


def open_regular(path: Path) -> BinaryIO:
    """Open a regular file for reading, never through a symlink (`FileError` otherwise)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as err:
        raise FileError(f"cannot open {path.name}: {err.strerror or err}") from err
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise FileError(f"{path.name} is not a regular file")
    return os.fdopen(fd, "rb")


def records_of(
    connector: FileDropConnector[FileDropSettings], stream: CsvStream
) -> Iterator[Record | RowError]:
    """The connector's rows: its own export, or core's generic format when configured."""
    settings = connector.settings
    if settings.format == "generic":
        return parse_generic(stream, connector.outlet, connector.name, settings.columns)
    return iter(connector.parse_file(stream))


def open_for(
    connector: FileDropConnector[FileDropSettings],
    handle: Any,
    encoding: str | None = None,
    *,
    recorded_style: str | None = None,
) -> CsvStream:
    """Open a binary handle as CSV with the connection's number style and amount columns.

    `recorded_style` is the style an earlier import decided for the file a row came from; the
    connection's own setting wins when it names one.
    """
    settings = connector.settings
    generic = settings.format == "generic"
    columns = amount_headers(settings.columns) if generic else connector.amount_columns
    style = NumberStyle(settings.number_style)
    if style is NumberStyle.AUTO and recorded_style:
        style = NumberStyle(recorded_style)
    return open_csv(
        handle,
        connector.outlet.timezone,
        style=style,
        amount_columns=columns,
        encoding=encoding,
    )


def remap_row(
    connector: FileDropConnector[FileDropSettings], kept: bytes, recorded_style: str | None
) -> list[Record | RowError]:
    """Map a dead-lettered row again, as kept (its file's header and its values, UTF-8), with
    the connector as it is configured now: the replay path after a fix."""
    stream = open_for(connector, io.BytesIO(kept), "utf-8", recorded_style=recorded_style)
    return list(records_of(connector, stream))


@dataclass(frozen=True)
class FileShape:
    """What the importer needs of an opened CSV beside its rows: header, delimiter, style."""

    header: list[str]
    delimiter: str
    style: NumberStyle | None
    encoding: str = "utf-8"


Prefix = tuple[str, str, str]  # a key without its external id: (outlet, source_system, kind)


@dataclass
class Batch:
    """A batch of mapped rows as the worker sends it: columns, row errors, rows read."""

    # Mapped rows as columns of plain values, which pickle writes in C: a list of per-row
    # (key, JSON, version, date) tuples cost the worker 2 us a row to pickle, most of it the
    # dates (pickled through __reduce__) and a memo entry for every tuple. A key's prefix is one
    # shared tuple per kind, written once and referred to after. Rows are fingerprinted here
    # too: storing a row costs the importing process more than mapping it costs the worker.
    prefixes: list[Prefix] = field(default_factory=list)
    external_ids: list[str] = field(default_factory=list)
    payloads: list[str] = field(default_factory=list)
    fingerprints: list[str] = field(default_factory=list)
    versions: list[datetime | None] = field(default_factory=list)
    days: list[str | None] = field(default_factory=list)  # ISO dates
    errors: list[RowError] = field(default_factory=list)
    rows: int = 0
    records: list[SerializedRecord] = field(default_factory=list)

    def add(self, record: Record, prefixes: dict[Prefix, Prefix]) -> None:
        """Serialise one mapped record into the columns."""
        # The JSON as text: orjson's bytes are allocated roomy, and 5,000 of them held at once
        # took ~40 MB more than their text does.
        (outlet, source, kind, external_id), payload, fingerprint, version, day = (
            record.serialized()
        )
        prefix = (outlet, source, kind)
        self.prefixes.append(prefixes.setdefault(prefix, prefix))
        self.external_ids.append(external_id)
        self.payloads.append(payload)
        self.fingerprints.append(fingerprint)
        self.versions.append(version)
        self.days.append(day)

    def finish(self) -> Batch:
        """Turn the columns into the store's `SerializedRecord`s."""
        # Built in C, zip making the tuples and tuple.__new__ the records: a comprehension
        # calling the class (whose __new__ is Python) cost a microsecond a row, in the process
        # that is the slower of the two.
        outlets, sources, kinds = zip(*self.prefixes, strict=True) if self.prefixes else ((),) * 3
        keys = zip(outlets, sources, kinds, self.external_ids, strict=True)
        columns = zip(keys, self.payloads, self.fingerprints, self.versions, self.days, strict=True)
        self.records = list(map(tuple.__new__, repeat(SerializedRecord), columns))
        self.prefixes, self.external_ids, self.payloads = [], [], []
        self.fingerprints, self.versions, self.days = [], [], []
        return self


def finished(item: FileShape | Batch | Unmapped | None) -> FileShape | Batch | None:
    assert not isinstance(item, Unmapped), "handed off with no one to map it"
    return item.finish() if isinstance(item, Batch) else item


def take_batch(rows: Iterator[Record | RowError], size: int) -> Batch:
    """The next `size` rows, mapped and serialised (CPU work: never on the event loop)."""
    batch = Batch()
    add, bad = batch.add, batch.errors
    prefixes: dict[Prefix, Prefix] = {}
    count = 0
    for item in rows:
        if isinstance(item, RowError):
            bad.append(item)
        else:
            add(item, prefixes)
        count += 1
        if count >= size:
            break
    batch.rows = count
    return batch


@dataclass
class Unmapped:
    """A batch the worker hands over as read, `(row number, cells)`, for the importer to map."""

    rows: list[tuple[int, list[str]]]


def mapped_batches(
    connector: FileDropConnector[FileDropSettings],
    handle: BinaryIO,
    encoding: str | None,
    size: int,
    *,
    hand_off: Callable[[], bool] | None = None,
) -> Iterator[FileShape | Batch | Unmapped]:
    """The file's shape, then its rows in batches of `size`, mapped and serialised; a batch
    is left unmapped whenever `hand_off()` says so."""
    stream = open_for(connector, handle, encoding)
    yield FileShape(stream.header, stream.delimiter, stream.style, stream.encoding)
    records = records_of(connector, stream)
    while True:
        if hand_off is not None and hand_off():
            # The mapper above is paused between rows: both read the same rows, in turn.
            if not (rows := list(islice(stream.rows(), size))):
                return
            yield Unmapped(rows)
        elif (batch := take_batch(records, size)).rows:
            yield batch
        else:
            return


def map_here(
    connector: FileDropConnector[FileDropSettings], shape: FileShape, unmapped: Unmapped
) -> Batch:
    """Map a batch the worker handed over, exactly as the worker maps its own."""
    stream = CsvStream(
        header=shape.header,
        delimiter=shape.delimiter,
        encoding=shape.encoding,
        style=shape.style,
        tz=connector.outlet.timezone,
        _rows=iter(unmapped.rows),
    )
    return take_batch(records_of(connector, stream), len(unmapped.rows)).finish()
