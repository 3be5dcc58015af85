"""The generic CSV format: documented columns, renamed from the YAML."""

from __future__ import annotations

import io
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sambung.errors import FileError
from sambung.intake.csvfiles import RowError, open_csv
from sambung.intake.generic_csv import amount_headers, parse_generic
from sambung.models import Outlet, PaymentMethod, Transaction, TransactionType

OUTLET = Outlet("kemang", "Kemang", ZoneInfo("Asia/Jakarta"))
COLUMNS = {"transaction_id": "No. Nota", "occurred_at": "Tanggal", "total": "Jumlah"}


def read(data: str, columns: dict[str, str]) -> list[Transaction | RowError]:
    stream = open_csv(
        io.BytesIO(data.encode()), OUTLET.timezone, amount_columns=amount_headers(columns)
    )
    return list(parse_generic(stream, OUTLET, "qasir", columns))  # type: ignore[arg-type]


def test_renamed_columns_and_optional_ones() -> None:
    rows = read(
        "No. Nota;Tanggal;Jumlah;tax;payment_method;type\n"
        "N-1;2026-11-26 10:00;Rp 110.000;Rp 10.000;QRIS;sale\n"
        "N-2;2026-11-26 10:05;Rp 5.500,50;;Tunai;refund\n"
        "N-3;2026-11-26 10:06;Rp 5.500;;Tunai;gratis\n",
        COLUMNS,
    )
    first, second, third = rows
    assert isinstance(first, Transaction) and isinstance(second, Transaction)
    assert (first.total, first.tax, first.subtotal) == (110000, 10000, 100000)
    assert first.payment_method is PaymentMethod.QRIS
    assert second.type is TransactionType.REFUND and second.total == Decimal("5500.50")
    assert isinstance(third, RowError) and (third.row, third.column) == (4, "type")


def test_a_missing_required_column_refuses_the_file() -> None:
    with pytest.raises(FileError, match="Jumlah"):
        read("No. Nota;Tanggal\nN-1;2026-11-26 10:00\n", COLUMNS)


@pytest.mark.parametrize(
    ("cell", "column"),
    [
        ("0001-01-01 00:00:00", "Tanggal"),
        ("9999-12-31 23:59:59", "Tanggal"),
        ("31/12/9999 23:59", "Tanggal"),
    ],
)
def test_a_date_out_of_range_is_that_rows_error(cell: str, column: str) -> None:
    rows = read(
        f"No. Nota;Tanggal;Jumlah\nN-1;{cell};Rp 1.000\nN-2;2026-11-26 10:00;Rp 2.000\n", COLUMNS
    )
    bad, good = rows
    assert isinstance(bad, RowError) and bad.column == column
    assert isinstance(good, Transaction) and good.total == 2000


@pytest.mark.parametrize("cell", ["9" * 29, "9" * 5000, "1." + "1" * 5000, "1e400000"])
def test_an_amount_beyond_every_bound_is_that_rows_error(cell: str) -> None:
    rows = read(f"No. Nota;Tanggal;Jumlah\nN-1;2026-11-26 10:00;{cell}\n", COLUMNS)
    assert isinstance(rows[0], RowError) and rows[0].column == "Jumlah"


def test_a_200_kb_cell_rejects_its_row_not_the_file() -> None:
    rows = read(
        "No. Nota;Tanggal;Jumlah;payment_method\n"
        f"N-1;2026-11-26 10:00;Rp 1.000;{'x' * 200_000}\n"
        "N-2;2026-11-26 10:00;Rp 2.000;Tunai\n",
        COLUMNS,
    )
    bad, good = rows
    assert isinstance(bad, RowError) and (bad.row, bad.column) == (2, "payment_method")
    assert isinstance(good, Transaction) and good.total == 2000
