"""Moka's CSV export: BOM, tab delimiter, zones, and an ambiguous amount refused."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from sambung.plugin import NumberStyle, Outlet, RowError, Transaction, open_csv
from sambung_moka.csvexport import AMOUNT_COLUMNS, parse_file

FIXTURES = Path(__file__).parent / "fixtures"
MAKASSAR = Outlet("panakkukang", "Kopi Senja Panakkukang", ZoneInfo("Asia/Makassar"))


def test_a_moka_export_with_bom_and_tabs() -> None:
    with (FIXTURES / "export.csv").open("rb") as handle:
        stream = open_csv(handle, MAKASSAR.timezone, amount_columns=AMOUNT_COLUMNS)
        assert (stream.delimiter, stream.encoding, stream.style) == (
            "\t",
            "utf-8-sig",
            NumberStyle.ID,
        )
        rows = list(parse_file(stream, MAKASSAR))
    sales = [r for r in rows if isinstance(r, Transaction)]
    errors = [r for r in rows if isinstance(r, RowError)]
    assert [s.external_id for s in sales] == ["MK-9001", "MK-9002", "MK-9003"]
    assert sales[0].occurred_at == datetime(2026, 11, 26, 0, 0, tzinfo=UTC)  # 08:00 WITA
    assert sales[1].total == Decimal("25000.50")
    # The file's style is Indonesian (decided by 25.000,50), so 12.000 is twelve thousand.
    assert sales[2].total == Decimal(12000)
    assert sales[2].business_date == date(2026, 11, 26)
    assert [(e.row, e.column, e.reason) for e in errors] == [
        (5, "grand_total", "required, but empty")
    ]


def test_the_simulators_exports_map_with_exactly_the_one_bad_row() -> None:
    from io import BytesIO

    from sambung_moka.fake import export_csv

    now = datetime(2026, 11, 26, 20, 0)
    for bad, expected in ((False, 0), (True, 1)):
        stream = open_csv(
            BytesIO(export_csv(3, now, bad_row=bad)),
            MAKASSAR.timezone,
            amount_columns=AMOUNT_COLUMNS,
        )
        rows = list(parse_file(stream, MAKASSAR))
        assert len(rows) == 8
        assert sum(isinstance(r, RowError) for r in rows) == expected
