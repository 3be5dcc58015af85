"""Moka's CSV export → unified records. Pure: no I/O, no asyncio.

Columns (seed document): `transaction_id`, `grand_total`, `created_at` (the outlet's local time
unless it carries a zone). The export has no tax or discount breakdown, so the subtotal is the
grand total.
"""

from __future__ import annotations

from collections.abc import Iterator

from sambung.plugin import CsvStream, Outlet, Record, Row, RowError, Transaction, map_rows

from .mapping import SOURCE_SYSTEM

AMOUNT_COLUMNS = ("grand_total",)


def parse_file(stream: CsvStream, outlet: Outlet) -> Iterator[Record | RowError]:
    """Every row of a Moka export as a sale or a row error."""
    id_at = stream.index("transaction_id")
    total_at = stream.index("grand_total")
    created_at = stream.index("created_at")

    def mapper(row: Row) -> Transaction:
        occurred_at, business_date = row.moment(created_at)
        total = row.amount(total_at)
        return Transaction(
            outlet=outlet.id,
            source_system=SOURCE_SYSTEM,
            external_id=row.text(id_at),
            occurred_at=occurred_at,
            business_date=business_date,
            subtotal=total,
            total=total,
        )

    return map_rows(stream, mapper)
