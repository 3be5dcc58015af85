"""Exact readers: money never through float, timestamps always aware, fields named on error."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sambung.errors import InvalidPayload, InvalidRecord
from sambung.parse import business_date, get, loads, money, require, text, timestamp

WIB, WITA = ZoneInfo("Asia/Jakarta"), ZoneInfo("Asia/Makassar")


def test_loads_keeps_fractional_numbers_exact() -> None:
    payload = loads(b'{"tax": 755.0125, "total": 9999999999999.99, "qty": 2}')
    assert payload["tax"] == Decimal("755.0125")
    assert payload["total"] == Decimal("9999999999999.99")
    assert payload["qty"] == 2


@pytest.mark.parametrize("body", [b"not json", b"{", b'{"a": NaN}', b"\xff\xfe"])
def test_loads_rejects_what_is_not_json(body: bytes) -> None:
    with pytest.raises(InvalidPayload):
        loads(body)


@given(
    st.decimals(
        allow_nan=False,
        allow_infinity=False,
        places=4,
        min_value=Decimal("-1e15"),
        max_value=Decimal("1e15"),
    )
)
def test_money_from_json_roundtrips_exactly(amount: Decimal) -> None:
    assert money(loads(f'{{"a": {amount}}}'.encode())["a"], "a") == amount


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (25000, Decimal(25000)),
        ("1799000.00", Decimal("1799000.00")),
        (Decimal("0.5"), Decimal("0.5")),
        (" 12 ", Decimal(12)),
    ],
)
def test_money_accepts_ints_decimals_and_numeric_strings(value: object, expected: Decimal) -> None:
    assert money(value, "total") == expected


@pytest.mark.parametrize("value", ["abc", "", True, None, "NaN", "Infinity", [1], {}])
def test_money_rejects_non_amounts_naming_the_field(value: object) -> None:
    with pytest.raises(InvalidRecord) as caught:
        money(value, "data.total")
    assert caught.value.field == "data.total"


def test_money_refuses_floats_outright() -> None:
    with pytest.raises(TypeError, match="never pass through float"):
        money(0.1, "total")


def test_naive_timestamp_is_read_in_the_outlet_timezone() -> None:
    assert timestamp("2026-11-26 20:15:00", WIB, "t") == datetime(2026, 11, 26, 13, 15, tzinfo=UTC)
    assert timestamp("2026-11-26T20:15:00", WITA, "t") == datetime(2026, 11, 26, 12, 15, tzinfo=UTC)


def test_offset_and_epoch_timestamps_keep_their_instant() -> None:
    assert timestamp("2026-11-26T20:15:00+08:00", WIB, "t").hour == 12
    assert timestamp("2026-11-26T13:15:00Z", WIB, "t").hour == 13
    assert timestamp(1764162900, WIB, "t") == datetime.fromtimestamp(1764162900, UTC)


@pytest.mark.parametrize("value", ["yesterday", "", None, True, "2026-13-01 00:00:00"])
def test_bad_timestamps_name_the_field(value: object) -> None:
    with pytest.raises(InvalidRecord) as caught:
        timestamp(value, WIB, "data.timestamp")
    assert caught.value.field == "data.timestamp"


def test_business_date_is_the_local_day() -> None:
    late_night = timestamp("2026-11-26 23:30:00", WITA, "t")  # 15:30 UTC
    assert business_date(late_night, WITA) == date(2026, 11, 26)
    assert business_date(timestamp("2026-11-27 00:30:00", WIB, "t"), WIB) == date(2026, 11, 27)


def test_require_and_get_walk_dotted_paths() -> None:
    payload = {"data": {"items": [{"qty": 2}], "tax": None}}
    assert require(payload, "data.items.0.qty") == 2
    assert get(payload, "data.items.5.qty", "none") == "none"
    with pytest.raises(InvalidRecord, match=r"data\.tax: field required"):
        require(payload, "data.tax")
    with pytest.raises(InvalidRecord, match=r"data\.missing"):
        require(payload, "data.missing")


def test_text_turns_numeric_ids_into_text() -> None:
    assert text(12345, "id") == "12345"
    with pytest.raises(InvalidRecord):
        text("  ", "id")


def test_loads_accepts_a_utf8_byte_order_mark() -> None:
    assert loads(b'\xef\xbb\xbf{"total": 1.50}') == {"total": Decimal("1.50")}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1234567.50", Decimal("1234567.50")),
        ("1.234.567,50", Decimal("1234567.50")),
        ("1,234,567.50", Decimal("1234567.50")),
        ("27500", Decimal(27500)),
        (Decimal("755.0125"), Decimal("755.0125")),
        (Decimal("755.01250000000000000000"), Decimal("755.01250000000000000000")),
    ],
)
def test_amounts_as_vendors_send_them(value: object, expected: Decimal) -> None:
    assert money(value, "total") == expected


@pytest.mark.parametrize(
    "value",
    [
        "١٢٣",  # Arabic-Indic digits
        "1_000",
        "1e5",
        "1." + "5" * 5000,
        "9" * 29,
        Decimal("1e300000"),
        Decimal("1e-300000"),
        10**30,
        loads(b'{"t": 1e300000}')["t"],
    ],
)
def test_amounts_beyond_what_a_vendor_sends_are_field_errors(value: object) -> None:
    with pytest.raises(InvalidRecord) as caught:
        money(value, "data.total")
    assert caught.value.field == "data.total"


@pytest.mark.parametrize(
    "value",
    [
        loads(b'{"t": 1e300000}')["t"],
        loads(b'{"t": -1e300000}')["t"],
        10**200,
        -1,
        "0001-01-01T00:00:00",
        "9999-12-31 23:59:59",
        "9999-12-31T23:59:59-14:00",
        "2026-11-26T10:00:00." + "0" * 100_000,
    ],
)
def test_timestamps_outside_the_plausible_years_are_field_errors(value: object) -> None:
    with pytest.raises(InvalidRecord) as caught:
        timestamp(value, WIB, "data.timestamp")
    assert caught.value.field == "data.timestamp"
