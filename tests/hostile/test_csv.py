"""Fuzzing the CSV reader and every CSV format: each installed file-drop connector's own export,
and core's generic format, through the importer every entry point uses.

Files start as the connector's realistic export (its fake's `example_file`); cells are replaced
with hostile ones, rows gain or lose cells, and random rows are added. Whatever the file holds,
the importer returns a report (never raises), every row ends as a stored record or a row
error, every stored record is well formed, and the errors file is safe to open in a
spreadsheet.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sambung.connectors import FileDropConnector, Mode
from sambung.intake.csvfiles import detect_delimiter
from sambung.intake.csvimport import FileImporter, ImportReport
from sambung.intake.csvworker import WORKER_FROM_BYTES
from sambung.intake.generic_csv import COLUMNS
from sambung.store.sqlite import SqliteStore
from sambung.testing import make_connector
from sambung.testing.manual_clock import ManualClock

from .harness import (
    REGISTRY,
    check_store,
    configured,
    connectors_with,
    fuzz,
    recorded,
    replay_all,
)

# Cells no till should export, each of which must end as a row error or a stored row.
HOSTILE_CELLS = (
    "0001-01-01 00:00:00",
    "9999-12-31 23:59:59",
    "26/11/0001 10:00",
    "2026-02-30 10:00:00",
    "2026-11-26T20:15:00+25:00",
    "9" * 29,
    "Rp " + "9" * 29,
    "1" + "0" * 5000,
    "0," + "5" * 5000,
    "1e5",
    "1E+300000",
    "1_000",
    "NaN",
    "Infinity",
    "-0",
    "(27.500)",
    "Rp 27.500,-",
    "27.500,50",
    "27,500.50",
    "\u0662\u0667\u0665\u0660\u0660",
    '=HYPERLINK("http://example.invalid","x")',
    "+1+1",
    "-2+3",
    "@SUM(A1:A9)",
    "\t=1",
    "TRX\x00-1",
    "\x00",
    "\u202eTRX-1",
    "e" + "\u0301" * 300,
    "\U0001f600\U0001f44d\U0001f3fd",
    "x" * 200_000,
    " ",
    "",
    'a "quoted" cell',
    "two\nlines",
    "semi;colon,comma\ttab",
    "refund",
    "void",
)


def formats() -> list[tuple[str, str, str]]:
    """(connector, format, variant) for every installed file-drop connector, natively and in
    the generic format, plus the settings that take other paths through the importer: a whole
    file refused for one bad row (its dry run first), a number style set rather than decided."""
    names = connectors_with(Mode.FILE_DROP)
    found = [(name, "native", "") for name in names] + [(names[0], "generic", "")]
    variants = [(names[0], "native", "reject_file"), (names[0], "generic", "plain")]
    return [*found, *variants, (names[-1], "native", "worker")]


VARIANTS: dict[str, dict[str, str]] = {
    "": {},
    "reject_file": {"on_row_error": "reject_file"},
    "plain": {"number_style": "plain"},
    "worker": {},  # every file mapped in a forked worker process, as large files are
}
FORMATS = formats()


def test_every_csv_format_in_the_repo_is_fuzzed() -> None:
    assert {("pawoon", "native", ""), ("moka", "native", "")} <= set(FORMATS)
    assert any(kind == "generic" for _, kind, _ in FORMATS)


def generic_export(connector: FileDropConnector, clock: ManualClock) -> bytes:
    """A file in core's generic format, as a merchant's spreadsheet would save it."""
    local = clock.now().astimezone(connector.outlet.timezone)
    rows = [list(COLUMNS)]
    for n in range(8):
        at = local - timedelta(minutes=n)
        kind = ("sale", "refund", "void")[n % 3]
        rows.append(
            [f"GEN-{n:04d}", f"{at:%Y-%m-%d %H:%M:%S}", "27500", "2500", "0", "0", "QRIS", kind]
        )
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


@dataclass(frozen=True)
class Template:
    """A realistic export to mutate: its delimiter and rows (the header first)."""

    delimiter: str
    rows: list[list[str]]

    @classmethod
    def of(cls, content: bytes) -> Template:
        """The template a file's bytes make."""
        text = content.decode("utf-8-sig")
        delimiter = detect_delimiter(text.splitlines()[0])
        return cls(delimiter, list(csv.reader(io.StringIO(text), delimiter=delimiter)))


class CsvIntake:
    """Imports files for one format and checks each report against the invariants."""

    def __init__(
        self,
        store: SqliteStore,
        connector: FileDropConnector,
        workdir: Path,
        templates: list[bytes],
        *,
        in_worker: bool = False,
    ) -> None:
        self.store, self.connector, self.workdir = store, connector, workdir
        self.importer = FileImporter(
            store,
            lambda outlet, kind: ("books",),
            ManualClock(),
            worker_from_bytes=0 if in_worker else WORKER_FROM_BYTES,
        )
        self.templates = [Template.of(content) for content in templates]
        self.rows, self.delimiter = self.templates[0].rows, self.templates[0].delimiter
        self.files = 0
        self.rows_read = 0
        self.refuses_whole_files = connector.settings.on_row_error == "reject_file"

    def spell(self, rows: list[list[str]], delimiter: str | None = None) -> bytes:
        """Rows as CSV bytes in the first template's delimiter unless told (cells quoted where
        they must be)."""
        out = io.StringIO()
        csv.writer(out, delimiter=delimiter or self.delimiter, lineterminator="\n").writerows(rows)
        return out.getvalue().encode("utf-8")

    async def load(self, content: bytes) -> ImportReport:
        """Import `content` as a new file and check what the importer made of it."""
        self.files += 1
        path = self.workdir / f"export-{self.files}.csv"
        path.write_bytes(content)
        errors_path = path.with_name(path.name + ".errors.csv")
        report = await self.importer.import_path(self.connector, path, errors_path=errors_path)
        if report.duplicate:
            return report
        self.rows_read += report.rows
        if report.file_error is not None:
            # Refusing the whole file is allowed only before any row is committed.
            assert report.imported == 0 and not errors_path.exists(), report
            return report
        if self.refuses_whole_files:
            assert report.imported == (0 if report.rejected else report.rows), report
        else:
            assert report.imported + report.rejected == report.rows, report
        if report.rejected:
            assert errors_path.exists() and report.errors_path == errors_path, report
            check_errors_file(errors_path)
        return report


def check_errors_file(path: Path) -> None:
    """No cell of the errors file is one a spreadsheet would evaluate."""
    csv.field_size_limit(1 << 24)  # it keeps a 200 KB cell as it was
    with path.open(encoding="utf-8", newline="") as handle:
        for line in csv.reader(handle):
            for cell in line:
                assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell[:80]


@pytest.fixture(params=FORMATS, ids=["-".join(filter(None, format)) for format in FORMATS])
async def intake(
    request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock
) -> AsyncIterator[CsvIntake]:
    """One CSV format in turn, importing into a SQLite store."""
    name, kind, variant = request.param
    cls = REGISTRY.connectors[name]
    extra = {"format": "generic"} if kind == "generic" else {}
    block = {"mode": "file-drop", **extra, **VARIANTS[variant]}
    connector = make_connector(cls, block)
    assert isinstance(connector, FileDropConnector)
    if kind == "generic":
        templates = [generic_export(connector, clock)]
    else:  # the fake's export, then the plugin's recorded ones (real shapes)
        made = connector.example_file(1)
        assert made, f"{name} offers no example_file() to mutate"
        templates = [made, *recorded(name, ".csv")]
    store = SqliteStore(tmp_path / "sambung.db", synchronous="OFF", clock=clock)
    await store.open()
    try:
        yield CsvIntake(store, connector, tmp_path, templates, in_worker=variant == "worker")
        # Every rejected row replayed, as after a fix: still failing or replayed, never raising.
        loaded = configured(tmp_path, {name: block}, f"sqlite:///{tmp_path / 'sambung.db'}")
        await replay_all(store, loaded, clock)
        await check_store(store)
    finally:
        await store.close()


async def test_a_hostile_cell_in_any_column_is_a_row_error_or_a_row(intake: CsvIntake) -> None:
    header, first = intake.rows[0], intake.rows[1]
    for cell in HOSTILE_CELLS:  # one file each: a cell's own trouble, not its neighbours'
        rows = [header, *intake.rows[1:]]
        for column in range(len(header)):
            row = list(first)
            row[column] = cell
            rows.append(row)
        report = await intake.load(intake.spell(rows))
        if report.file_error is not None:
            # The one whole-file refusal a cell may cause, by design: amounts spelled both ways.
            assert "mix" in report.file_error, (cell[:40], report.file_error)
            continue
        assert report.rows == len(rows) - 1, (cell[:40], report)
        if not report.rejected or not intake.refuses_whole_files:
            assert report.imported >= len(intake.rows) - 1 - len(header), (cell[:40], report)


@pytest.mark.parametrize("suffix", ["\x00", "\u202e", "=1", "\U0001f600", "x" * 20_000])
async def test_a_hostile_header_name_never_stops_the_import(intake: CsvIntake, suffix: str) -> None:
    header, first = intake.rows[0], intake.rows[1]
    for column in range(len(header)):
        # Every column's name made hostile in turn, with a row whose cell there is rejected
        # for its size: the row error names that column, quoting the hostile name.
        named = [title + suffix if i == column else title for i, title in enumerate(header)]
        oversized = [("y" * 20_000 if i == column else cell) for i, cell in enumerate(first)]
        report = await intake.load(intake.spell([named, *intake.rows[1:], oversized]))
        assert report.file_error is None or "missing" in report.file_error, report.file_error


@fuzz(200)
@given(data=st.data())
async def test_mutated_exports(intake: CsvIntake, data: st.DataObject) -> None:
    template = data.draw(st.sampled_from(intake.templates), label="template")
    rows = [list(row) for row in template.rows]
    width = len(rows[0])
    cells = st.one_of(st.sampled_from(HOSTILE_CELLS), st.text(max_size=30))
    for _ in range(data.draw(st.integers(1, 6), label="changes")):
        how = data.draw(st.sampled_from(["cell", "cell", "cell", "short", "long", "row", "title"]))
        at = data.draw(st.integers(1, len(rows) - 1), label="row")
        if how == "title":  # a header name: a required one missing refuses the file, no more
            rows[0][data.draw(st.integers(0, width - 1))] += data.draw(cells, label="title")
        elif how == "cell":
            row = rows[at] = rows[at] + [""] * (width - len(rows[at]))
            row[data.draw(st.integers(0, width - 1))] = data.draw(cells, label="cell")
        elif how == "short":
            rows[at] = rows[at][: data.draw(st.integers(0, width - 1))]
        elif how == "long":
            rows[at] = [*rows[at], *data.draw(st.lists(cells, min_size=1, max_size=3))]
        else:
            rows.insert(at, data.draw(st.lists(cells, max_size=width + 2), label="new row"))
    content = intake.spell(rows, template.delimiter)
    # As a back office on another locale might save it: a BOM, or Windows-1252 throughout.
    encoding = data.draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "cp1252"]))
    if encoding != "utf-8":
        content = content.decode("utf-8").encode(encoding, errors="replace")
    if data.draw(st.integers(0, 9), label="bytes") == 0:
        at = data.draw(st.integers(0, len(content)))
        junk = data.draw(st.sampled_from([b"\xff", b"\xc3", b"\x00", b"\r", b'"']))
        content = content[:at] + junk + content[at:]
    await intake.load(content)


@fuzz(100)
@given(content=st.binary(max_size=400))
async def test_random_bytes_after_a_valid_header(intake: CsvIntake, content: bytes) -> None:
    header = intake.spell(intake.rows[:1])
    await intake.load(header + content)
