"""Reading CSV exports the way Indonesian tills write them, streamed and exact.

Per file, never per cell: the encoding (UTF-8 with or without BOM, else Windows-1252), the
delimiter (`;`, `,` or tab, from the header line) and the number style (`25.000,50` or
`25,000.50`, from a sample of the rows) are decided once; a cell that does not fit the file's
style, or that the sample could not disambiguate, is a row error rather than a guess.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from functools import lru_cache
from itertools import chain, islice
from typing import IO
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from sambung.errors import EncodingError, FileError, InvalidRecord
from sambung.models import Record
from sambung.parse import (
    MAX_AMOUNT_DECIMALS,
    MAX_AMOUNT_DIGITS,
    MAX_TEXT_CHARS,
    MAX_YEAR,
    MIN_YEAR,
    bounded_amount,
)

# Rows read ahead to decide the number style; kept in memory, so bounded.
SAMPLE_ROWS = 2000
_PROBE_BYTES = 64 * 1024
_FIELD_LIMIT = 16 * 1024 * 1024
DELIMITERS = (";", ",", "\t")


class NumberStyle(StrEnum):
    """How amounts are spelled in one file."""

    AUTO = "auto"  # decide from the file's own cells
    ID = "id"  # 25.000,50: dot groups thousands, comma marks decimals (Indonesian)
    EN = "en"  # 25,000.50
    PLAIN = "plain"  # 25000.50: no grouping at all


@dataclass(frozen=True)
class RowError:
    """One rejected row: its number as a spreadsheet shows it, the column, why, its values."""

    row: int
    column: str | None
    reason: str
    values: tuple[str, ...] = ()


_SPACES = re.compile(r"[\s\u00a0]+")
_CURRENCY = re.compile(r"^(?:rp\.?|idr)", re.IGNORECASE)
_GROUPED = {
    NumberStyle.ID: re.compile(r"^\d{1,3}(?:\.\d{3})+(?:,\d+)?$|^\d+(?:,\d+)?$"),
    NumberStyle.EN: re.compile(r"^\d{1,3}(?:,\d{3})+(?:\.\d+)?$|^\d+(?:\.\d+)?$"),
    NumberStyle.PLAIN: re.compile(r"^\d+(?:\.\d+)?$"),
}
_DIGITS = re.compile(r"^\d+$")


def _bare(cell: str) -> tuple[str, bool]:
    """The digits and separators of a cell, and whether it was negative."""
    text = _SPACES.sub("", cell)
    text = _CURRENCY.sub("", text)
    negative = text.startswith("-")
    if negative:
        text = text[1:]
    elif text.startswith("(") and text.endswith(")"):
        negative, text = True, text[1:-1]
    return text, negative


def style_evidence(cell: str) -> NumberStyle | None:
    """The style a single cell proves on its own, or None if it fits several (`25.000`)."""
    text, _ = _bare(cell)
    if not text or _DIGITS.match(text):
        return None
    dots, commas = text.count("."), text.count(",")
    if dots and commas:
        return NumberStyle.ID if text.rfind(",") > text.rfind(".") else NumberStyle.EN
    separator = "." if dots else ","
    count = dots or commas
    tail = len(text) - text.rfind(separator) - 1
    if count > 1:  # only a thousands separator repeats
        return NumberStyle.ID if separator == "." else NumberStyle.EN
    if tail != 3:  # 25,5 or 25.50: a decimal mark
        return NumberStyle.ID if separator == "," else NumberStyle.EN
    return None


def decide_style(cells: Iterable[str]) -> NumberStyle | None:
    """The style a sample of cells agrees on; None when no cell decides it.

    Raises `FileError` when cells contradict each other: a file mixing both styles cannot be
    read without guessing.
    """
    found: set[NumberStyle] = set()
    rupiah_dots = False
    for cell in cells:
        evidence = style_evidence(cell)
        if evidence is not None:
            found.add(evidence)
        elif "." in cell and _CURRENCY.match(cell.strip()):
            rupiah_dots = True
    if len(found) > 1:
        raise FileError("amounts mix 25.000,50 and 25,000.50 styles in one file")
    if not found and rupiah_dots:
        # `Rp 27.500` is how Indonesian locales print Rupiah: the prefix is the file telling us
        # its convention, where a bare `27.500` would not.
        return NumberStyle.ID
    return found.pop() if found else None


class AmountError(ValueError):
    """A cell that is not an amount in the file's style."""


@lru_cache(maxsize=65_536)
def parse_amount(cell: str, style: NumberStyle | None) -> Decimal:
    """An exact amount from a cell in `style`; None means the file did not decide one."""
    # Cached: a till's prices repeat on row after row, and Decimals are immutable.
    text, negative = _bare(cell)
    if not text:
        raise AmountError("empty amount")
    # Bounded before any conversion: grouping separators at most double the digits.
    if len(text) > 2 * (MAX_AMOUNT_DIGITS + MAX_AMOUNT_DECIMALS):
        raise AmountError(f"amount longer than {MAX_AMOUNT_DIGITS} digits: {cell[:40]!r}…")
    if _DIGITS.match(text):
        value = Decimal(text)
        return _bounded(-value if negative else value, cell)
    if style is None or style is NumberStyle.AUTO:
        evidence = style_evidence(cell)
        if evidence is None:
            raise AmountError(
                f"ambiguous amount {cell!r}: the file does not show whether '.' or ',' groups "
                "thousands (set number_style)"
            )
        raise AmountError(f"amount {cell!r} does not match the file's number style")
    if not _GROUPED[style].match(text):
        raise AmountError(f"not an amount in the file's {style.value} style: {cell!r}")
    if style is NumberStyle.ID:
        text = text.replace(".", "").replace(",", ".")
    elif style is NumberStyle.EN:
        text = text.replace(",", "")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise AmountError(f"not an amount: {cell!r}") from None
    return _bounded(-value if negative else value, cell)


def _bounded(value: Decimal, cell: str) -> Decimal:
    """`value` if its digits fit what the model keeps (see `sambung.parse.bounded_amount`)."""
    try:
        return bounded_amount(value, "amount")
    except InvalidRecord as err:
        raise AmountError(f"{err.reason}: {cell[:40]!r}") from None


def format_amount(value: Decimal, style: NumberStyle, *, prefix: str = "") -> str:
    """An amount spelled in `style` (for tests, fixtures and the simulator)."""
    sign = "-" if value < 0 else ""
    integral, _, fraction = f"{abs(value):f}".partition(".")
    if style is NumberStyle.PLAIN:
        return f"{prefix}{sign}{integral}{'.' + fraction if fraction else ''}"
    group, mark = (".", ",") if style is NumberStyle.ID else (",", ".")
    grouped = f"{int(integral):,}".replace(",", group)
    return f"{prefix}{sign}{grouped}{mark + fraction if fraction else ''}"


_DAY_FIRST = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})[ T](\d{1,2}):(\d{2})(?::(\d{2}))?$")


def parse_local_time(cell: str, tz: ZoneInfo) -> datetime:
    """An aware UTC instant from `2026-11-26 20:15[:00]`, ISO-8601 or `26/11/2026 20:15[:00]`;
    a time without a zone is read in the outlet's `tz`."""
    return local_moment(cell, tz)[0].astimezone(UTC)  # already UTC for a zone-less cell


def local_moment(cell: str, tz: ZoneInfo) -> tuple[datetime, date]:
    """An aware instant from a cell (as `parse_local_time` reads it) and the outlet's calendar
    day at that instant, in one reading.

    A zone-less time is turned into UTC with the outlet's offset for its local hour, looked up
    once per hour: asking the zone for every row cost more than the rest of the row's mapping.
    """
    text = cell.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        match = _DAY_FIRST.match(text)
        if match is None:
            raise ValueError(f"not a date and time: {cell!r}") from None
        day, month, year, hour, minute, second = match.groups()
        parsed = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0))
    if not MIN_YEAR <= parsed.year <= MAX_YEAR:
        # Before any zone arithmetic: 0001-01-01 or 9999-12-31 overflow when moved to UTC.
        raise ValueError(f"year {parsed.year} is outside {MIN_YEAR}..{MAX_YEAR}: {cell!r}")
    if parsed.tzinfo is not None:
        return parsed, parsed.astimezone(tz).date()
    key = (tz, parsed.year, parsed.month, parsed.day, parsed.hour)
    offset = _HOUR_OFFSETS.get(key)
    if offset is None:
        if len(_HOUR_OFFSETS) >= 100_000:  # bounded: a file spans a few thousand hours
            _HOUR_OFFSETS.clear()
        offset = _HOUR_OFFSETS[key] = _hour_offset(tz, parsed)
    if offset is _CHANGES:  # the offset changes within this hour: ask the zone for this time
        return parsed.replace(tzinfo=tz).astimezone(UTC), parsed.date()
    # Aware arithmetic keeps UTC: cheaper than replace(tzinfo=...) and astimezone().
    return _UTC_EPOCH + ((parsed - _EPOCH) - offset), parsed.date()


_EPOCH, _UTC_EPOCH = datetime(1970, 1, 1), datetime(1970, 1, 1, tzinfo=UTC)
_CHANGES = timedelta.max
_HOUR_OFFSETS: dict[tuple[ZoneInfo, int, int, int, int], timedelta] = {}


def _hour_offset(tz: ZoneInfo, local: datetime) -> timedelta:
    """The UTC offset of `tz` for the whole local hour of `local`, or `_CHANGES` when it is not
    the same at the hour's first and last microsecond (a change of offset falls inside it)."""
    start = local.replace(minute=0, second=0, microsecond=0, tzinfo=tz)
    first = start.utcoffset()
    last = start.replace(minute=59, second=59, microsecond=999999).utcoffset()
    return first if first is not None and first == last else _CHANGES


def detect_encoding(probe: bytes) -> str:
    """`utf-8-sig` with a BOM, `utf-8` when the start decodes as UTF-8, else `cp1252`."""
    if probe.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(probe, final=False)
    except UnicodeDecodeError:
        return "cp1252"
    return "utf-8"


def detect_delimiter(header_line: str) -> str:
    """The delimiter the header line uses most (`;`, `,` or tab)."""
    counts = {d: header_line.count(d) for d in DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


@dataclass
class CsvStream:
    """One CSV file opened for streaming: its header, delimiter, encoding and number style.

    `rows()` yields `(row_number, cells)` with the number a spreadsheet shows (the header is
    row 1). Memory stays flat: only `SAMPLE_ROWS` rows are held, to decide the number style.
    """

    header: list[str]
    delimiter: str
    encoding: str
    style: NumberStyle | None
    tz: ZoneInfo
    _rows: Iterator[tuple[int, list[str]]] = field(repr=False)

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """Every data row with its spreadsheet row number; blank lines are skipped."""
        # The reader's own generator: a wrapper that counted rows cost a frame per row, unread.
        return self._rows

    def index(self, *names: str, required: bool = True) -> int | None:
        """The position of the first header matching one of `names` (case and spaces ignored)."""
        wanted = {_norm(name) for name in names}
        for position, title in enumerate(self.header):
            if _norm(title) in wanted:
                return position
        if required:
            raise FileError(
                f"column {names[0]!r} is missing (the header has: {', '.join(self.header)})"
            )
        return None

    def amount(self, cells: Sequence[str], position: int) -> Decimal:
        """The amount in a cell, exactly, in the file's number style."""
        return parse_amount(cells[position], self.style)


def _norm(title: str) -> str:
    return title.strip().lower().replace("_", " ")


def open_csv(
    binary: IO[bytes],
    tz: ZoneInfo,
    *,
    style: NumberStyle = NumberStyle.AUTO,
    amount_columns: Sequence[str] = (),
    encoding: str | None = None,
) -> CsvStream:
    """Open a binary stream as CSV, deciding encoding, delimiter and number style.

    `amount_columns` names the header columns whose sample decides the number style under
    `AUTO`; `encoding` overrides the detected one. Raises `FileError` for an empty file, bad
    bytes, or styles mixed in the sample.
    """
    buffered: io.BufferedReader = (
        binary if isinstance(binary, io.BufferedReader) else io.BufferedReader(binary)  # type: ignore[arg-type]
    )
    probe = buffered.peek(_PROBE_BYTES)[:_PROBE_BYTES]
    encoding = encoding or detect_encoding(probe)
    text = io.TextIOWrapper(buffered, encoding=encoding, newline="", errors="strict")
    try:
        header_line = text.readline()
    except UnicodeDecodeError as err:
        raise EncodingError(f"the file is not text in {encoding}: {err}") from err
    if not header_line.strip():
        raise FileError("the file is empty: expected a header line")
    delimiter = detect_delimiter(header_line)
    header = [cell.strip() for cell in next(csv.reader([header_line], delimiter=delimiter))]
    # A cell past csv's own limit (128 KiB) would refuse the whole file; above ours it is only
    # that row's error (map_rows), so csv may read up to a bound that still caps memory per row.
    if csv.field_size_limit() < _FIELD_LIMIT:
        csv.field_size_limit(_FIELD_LIMIT)
    reader = csv.reader(text, delimiter=delimiter)

    def numbered() -> Iterator[tuple[int, list[str]]]:
        number = 1
        try:
            for cells in reader:
                number += 1
                # A blank line: no cells, or only empty ones (the first cell decides most rows).
                if cells and (cells[0].strip() or "".join(cells).strip()):
                    yield number, cells
        except UnicodeDecodeError as err:
            raise EncodingError(f"row {number + 1}: bytes that are not {encoding}: {err}") from err
        except csv.Error as err:
            raise FileError(f"row {number + 1}: {err}") from err

    rows = numbered()
    decided: NumberStyle | None = None if style is NumberStyle.AUTO else style
    if style is NumberStyle.AUTO:
        sample = list(islice(rows, SAMPLE_ROWS))
        wanted = {_norm(name) for name in amount_columns}
        positions = [i for i, title in enumerate(header) if _norm(title) in wanted]
        decided = decide_style(cells[i] for _, cells in sample for i in positions if i < len(cells))
        rows = chain(sample, rows)
    return CsvStream(
        header=header,
        delimiter=delimiter,
        encoding=encoding,
        style=decided,
        tz=tz,
        _rows=rows,
    )


# OWASP CSV injection: a cell starting with one of these is a formula to a spreadsheet.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: object) -> str:
    """A cell as text a spreadsheet shows and never evaluates (`=SUM(…)` → `'=SUM(…)`)."""
    text = "" if cell is None else str(cell)
    return "'" + text if text.startswith(_FORMULA_START) else text


class CellError(ValueError):
    """One cell of a row is wrong: which column and why."""

    def __init__(self, column: str | None, reason: str) -> None:
        self.column, self.reason = column, reason
        super().__init__(f"{column}: {reason}" if column else reason)


def row_error(number: int, cells: Sequence[str], err: Exception) -> RowError:
    """A `RowError` for a row whose mapping raised `err` (a cell, record or model error)."""
    column: str | None = None
    if isinstance(err, CellError):
        column, reason = err.column, err.reason
    elif isinstance(err, ValidationError):
        first = err.errors(include_url=False)[0]
        column = ".".join(str(step) for step in first["loc"]) or None
        reason = first["msg"]
    elif isinstance(err, InvalidRecord):
        column, reason = err.field, err.reason
    else:
        reason = f"{type(err).__name__}: {err}"
    return RowError(number, column, reason, tuple(cells))


class Row:
    """Typed reads of one row's cells, each failure naming its column."""

    __slots__ = ("cells", "stream")

    def __init__(self, stream: CsvStream, cells: list[str]) -> None:
        self.stream, self.cells = stream, cells

    def text(self, position: int | None) -> str:
        """The stripped cell; missing or blank is an error."""
        value = self.optional_text(position)
        if value is None:
            raise CellError(self._title(position), "required, but empty")
        return value

    def optional_text(self, position: int | None) -> str | None:
        """The stripped cell, or None when the column is absent or the cell blank."""
        if position is None or position >= len(self.cells):
            return None
        value = self.cells[position].strip()
        return value or None

    def amount(self, position: int | None, *, required: bool = True) -> Decimal:
        """A non-negative amount in the file's number style (zero when optional and blank)."""
        value = self.optional_text(position)
        if value is None:
            if required:
                raise CellError(self._title(position), "required, but empty")
            return Decimal(0)
        try:
            result = parse_amount(value, self.stream.style)
        except AmountError as err:
            raise CellError(self._title(position), str(err)) from None
        if result < 0:
            raise CellError(self._title(position), f"must not be negative, got {value!r}")
        return result

    def time(self, position: int | None) -> datetime:
        """An aware UTC instant; a zone-less cell is read in the outlet's timezone."""
        try:
            return parse_local_time(self.text(position), self.stream.tz)
        except ValueError as err:
            raise CellError(self._title(position), str(err)) from None

    def moment(self, position: int | None) -> tuple[datetime, date]:
        """An aware instant and the outlet's calendar day then (see `local_moment`)."""
        try:
            return local_moment(self.text(position), self.stream.tz)
        except ValueError as err:
            raise CellError(self._title(position), str(err)) from None

    def _title(self, position: int | None) -> str | None:
        header = self.stream.header
        return header[position] if position is not None and position < len(header) else None


def _oversized(stream: CsvStream, number: int, cells: list[str]) -> RowError:
    """The row error for a row holding a cell longer than any value a record keeps."""
    position = max(range(len(cells)), key=lambda i: len(cells[i]))
    column = stream.header[position] if position < len(stream.header) else None
    reason = f"cell longer than {MAX_TEXT_CHARS} characters ({len(cells[position])})"
    return RowError(number, column, reason, tuple(cells))


def map_rows(stream: CsvStream, mapper: Callable[[Row], Record]) -> Iterator[Record | RowError]:
    """Apply a plugin's row mapper to every row, turning each failure into a `RowError`."""
    row = Row(stream, [])
    for number, cells in stream.rows():
        row.cells = cells  # one Row re-pointed at each line: no object per row
        if cells and max(map(len, cells)) > MAX_TEXT_CHARS:
            yield _oversized(stream, number, cells)
            continue
        try:
            yield mapper(row)
        except (CellError, InvalidRecord, ValidationError, ArithmeticError, ValueError) as err:
            # Arithmetic and value errors too: whatever a cell holds ends as that row's error,
            # never as an exception that stops the file (and, in the daemon, the inbox).
            yield row_error(number, cells, err)
