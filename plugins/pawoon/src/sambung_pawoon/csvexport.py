"""Pawoon's CSV export → unified records. Pure: no I/O, no asyncio.

Columns (seed document): `Date` (`%Y-%m-%d %H:%M:%S`, the outlet's local time), `Transaction ID`,
`Total`, `Tax`, `Items`. `Items` names what was sold without prices, so it cannot make line
items with exact totals; it is not mapped. The subtotal is `Total - Tax`.
"""

from __future__ import annotations

from collections.abc import Iterator

from sambung.plugin import CsvStream, Outlet, Record, Row, RowError, Transaction, map_rows

from .mapping import SOURCE_SYSTEM

AMOUNT_COLUMNS = ("Total", "Tax")


def parse_file(stream: CsvStream, outlet: Outlet) -> Iterator[Record | RowError]:
    """Every row of a Pawoon export as a sale or a row error."""
    date_at = stream.index("Date")
    id_at = stream.index("Transaction ID")
    total_at = stream.index("Total")
    tax_at = stream.index("Tax", required=False)

    def mapper(row: Row) -> Transaction:
        occurred_at, business_date = row.moment(date_at)
        total = row.amount(total_at)
        tax = row.amount(tax_at, required=False)
        return Transaction(
            outlet=outlet.id,
            source_system=SOURCE_SYSTEM,
            external_id=row.text(id_at),
            occurred_at=occurred_at,
            business_date=business_date,
            subtotal=total - tax,
            tax=tax,
            total=total,
        )

    return map_rows(stream, mapper)
