"""CSV reading: encodings, delimiters, per-file number styles, dates, and exact amounts."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sambung.errors import FileError
from sambung.intake.csvfiles import (
    AmountError,
    NumberStyle,
    decide_style,
    detect_delimiter,
    format_amount,
    local_moment,
    open_csv,
    parse_amount,
    parse_local_time,
    style_evidence,
)

WIB = ZoneInfo("Asia/Jakarta")
AMOUNTS = st.decimals(
    min_value=Decimal("-1e12"), max_value=Decimal("1e12"), places=2, allow_nan=False
)


@given(AMOUNTS, st.sampled_from([NumberStyle.ID, NumberStyle.EN, NumberStyle.PLAIN]))
def test_formatting_and_parsing_back_gives_the_same_amount(
    value: Decimal, style: NumberStyle
) -> None:
    assert parse_amount(format_amount(value, style), style) == value


@given(AMOUNTS)
def test_rupiah_prefixed_indonesian_amounts_round_trip(value: Decimal) -> None:
    spelled = format_amount(value, NumberStyle.ID, prefix="Rp ")
    assert parse_amount(spelled, NumberStyle.ID) == value


@pytest.mark.parametrize(
    ("cell", "style", "expected"),
    [
        ("Rp 25.000", NumberStyle.ID, Decimal(25000)),
        ("Rp25.000,50", NumberStyle.ID, Decimal("25000.50")),
        ("25.000,50", NumberStyle.ID, Decimal("25000.50")),
        ("25,000.50", NumberStyle.EN, Decimal("25000.50")),
        ("IDR 1,027,500", NumberStyle.EN, Decimal(1027500)),
        ("27500", None, Decimal(27500)),
        ("-2.500", NumberStyle.ID, Decimal(-2500)),
        ("Rp\u00a01.000.000", NumberStyle.ID, Decimal(1000000)),
    ],
)
def test_amounts_in_the_files_style(
    cell: str, style: NumberStyle | None, expected: Decimal
) -> None:
    assert parse_amount(cell, style) == expected


@pytest.mark.parametrize(
    ("cell", "style"),
    [
        ("25.000", None),  # 25 or 25000: the file never said
        ("25,000.50", NumberStyle.ID),  # the other style than the file's
        ("25.00.0", NumberStyle.ID),
        ("abc", NumberStyle.EN),
        ("", NumberStyle.ID),
        ("1e5", NumberStyle.PLAIN),
    ],
)
def test_ambiguous_or_malformed_cells_are_errors(cell: str, style: NumberStyle | None) -> None:
    with pytest.raises(AmountError):
        parse_amount(cell, style)


def test_one_cell_decides_only_when_it_can() -> None:
    assert style_evidence("25.000,50") is NumberStyle.ID
    assert style_evidence("1.000.000") is NumberStyle.ID
    assert style_evidence("25,5") is NumberStyle.ID
    assert style_evidence("25,000.50") is NumberStyle.EN
    assert style_evidence("25.000") is None
    assert decide_style(["25.000", "27.500", "1.500,50"]) is NumberStyle.ID
    assert decide_style(["25.000", "27500"]) is None
    assert decide_style(["Rp 25.000", "Rp 27.500"]) is NumberStyle.ID
    with pytest.raises(FileError, match="mix"):
        decide_style(["1.500,50", "1,500.50"])


def test_dates_with_or_without_seconds_read_in_the_outlet_zone() -> None:
    expected = datetime(2026, 11, 26, 13, 15, tzinfo=UTC)
    assert parse_local_time("2026-11-26 20:15:00", WIB) == expected
    assert parse_local_time("2026-11-26 20:15", WIB) == expected
    assert parse_local_time("26/11/2026 20:15", WIB) == expected
    assert parse_local_time("2026-11-26T20:15:00+07:00", ZoneInfo("Asia/Makassar")) == expected
    with pytest.raises(ValueError):
        parse_local_time("kemarin", WIB)


@pytest.mark.parametrize(
    "zone", ["Asia/Jakarta", "Europe/Berlin", "Australia/Lord_Howe", "America/Santiago"]
)
def test_the_cached_hour_offsets_read_every_minute_as_the_zone_itself_does(zone: str) -> None:
    # Every 59 minutes of the year (each hour, at a different minute), and every minute of the
    # hours around each change of offset (whole and half hours, midnight, gaps and repeats),
    # in both spellings, against replace(tzinfo=...).
    tz = ZoneInfo(zone)
    start, hour = datetime(2026, 1, 1), timedelta(hours=1)
    moments = [start + timedelta(minutes=59 * n) for n in range(365 * 24 * 60 // 59)]
    for n in range(365 * 24):
        at = start + n * hour
        if at.replace(tzinfo=tz).utcoffset() != (at + hour).replace(tzinfo=tz).utcoffset():
            moments += [at - hour + timedelta(minutes=m) for m in range(4 * 60)]
    for local in moments:
        expected = local.replace(tzinfo=tz).astimezone(UTC)
        for cell in (f"{local:%Y-%m-%d %H:%M:%S}", f"{local:%d/%m/%Y %H:%M}"):
            instant, day = local_moment(cell, tz)
            assert instant.astimezone(UTC) == expected, cell
            assert day == local.date()
            assert parse_local_time(cell, tz) == expected


def test_a_moment_with_its_own_offset_or_without_a_time() -> None:
    instant, day = local_moment("2026-11-26T20:15:00+08:00", WIB)
    assert instant.astimezone(UTC) == datetime(2026, 11, 26, 12, 15, tzinfo=UTC)
    assert day == datetime(2026, 11, 26).date()
    assert local_moment("2026-11-26", WIB)[0] == datetime(2026, 11, 26, tzinfo=WIB)


@pytest.mark.parametrize(
    ("line", "delimiter"), [("a;b;c\n", ";"), ("a,b,c\n", ","), ("a\tb\tc\n", "\t")]
)
def test_the_header_decides_the_delimiter(line: str, delimiter: str) -> None:
    assert detect_delimiter(line) == delimiter


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (b"Nama;Total\nKopi Gula Aren;25.000,50\n", "utf-8"),
        (b"\xef\xbb\xbf" + b"Nama;Total\nKopi;25.000,50\n", "utf-8-sig"),
        ("Nama;Total\nCafé crème;25.000,50\n".encode("cp1252"), "cp1252"),
    ],
)
def test_encodings_with_bom_and_windows_1252(data: bytes, encoding: str) -> None:
    stream = open_csv(io.BytesIO(data), WIB, amount_columns=["Total"])
    assert stream.encoding == encoding
    assert stream.header == ["Nama", "Total"]
    assert stream.style is NumberStyle.ID
    rows = list(stream.rows())
    assert rows[0][0] == 2
    assert stream.amount(rows[0][1], 1) == Decimal("25000.50")


def test_row_numbers_are_the_spreadsheets_and_blank_lines_are_skipped() -> None:
    data = b"a,b\n1,2\n\n3,4\n"
    assert [n for n, _ in open_csv(io.BytesIO(data), WIB).rows()] == [2, 4]


def test_an_empty_file_is_a_file_error() -> None:
    with pytest.raises(FileError, match="empty"):
        open_csv(io.BytesIO(b""), WIB)
