"""Pawoon's CSV export: realistic fixtures in both number styles, bad rows explained."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from sambung.plugin import Outlet, RowError, Transaction, open_csv
from sambung_pawoon.csvexport import AMOUNT_COLUMNS, parse_file

FIXTURES = Path(__file__).parent / "fixtures"
KEMANG = Outlet("kemang", "Kopi Senja Kemang", ZoneInfo("Asia/Jakarta"))


def read(name: str) -> list[Transaction | RowError]:
    with (FIXTURES / name).open("rb") as handle:
        stream = open_csv(handle, KEMANG.timezone, amount_columns=AMOUNT_COLUMNS)
        return list(parse_file(stream, KEMANG))  # type: ignore[arg-type]


def test_an_indonesian_export_maps_good_rows_and_explains_bad_ones() -> None:
    rows = read("export_id.csv")
    sales = [r for r in rows if isinstance(r, Transaction)]
    errors = [r for r in rows if isinstance(r, RowError)]
    assert [s.external_id for s in sales] == ["PWN-0001", "PWN-0002", "PWN-0003", "PWN-0007"]
    first = sales[0]
    assert (first.total, first.tax, first.subtotal) == (Decimal(27500), Decimal(2500), 25000)
    assert first.occurred_at == datetime(2026, 11, 26, 0, 5, 12, tzinfo=UTC)
    assert first.business_date == date(2026, 11, 26)
    assert sales[1].total == Decimal("58300.50")
    assert sales[2].total == Decimal(1250000)
    assert [(e.row, e.column) for e in errors] == [
        (5, "Total"),
        (6, "Transaction ID"),
        (7, "Date"),
    ]
    assert errors[0].values[1] == "PWN-0004"
    assert "15.000,-" in errors[0].reason


def test_an_english_style_export_with_commas_and_crlf() -> None:
    rows = read("export_en.csv")
    assert all(isinstance(r, Transaction) for r in rows)
    sales = [r for r in rows if isinstance(r, Transaction)]
    assert sales[0].total == Decimal(27500) and sales[0].tax == Decimal(2500)
    assert sales[1].total == Decimal("1027500.50")
    # 23:30 WIB is still the 26th at the outlet, though the 26th 16:30 in UTC.
    assert sales[1].business_date == date(2026, 11, 26)


def test_the_simulators_exports_map_with_exactly_the_one_bad_row() -> None:
    from io import BytesIO

    from sambung_pawoon.fake import export_csv

    now = datetime(2026, 11, 26, 20, 0)
    for bad, expected in ((False, 0), (True, 1)):
        stream = open_csv(
            BytesIO(export_csv(3, now, bad_row=bad)), KEMANG.timezone, amount_columns=AMOUNT_COLUMNS
        )
        rows = list(parse_file(stream, KEMANG))
        assert len(rows) == 8
        assert sum(isinstance(r, RowError) for r in rows) == expected
