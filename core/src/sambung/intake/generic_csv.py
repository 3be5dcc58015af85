"""The `generic` CSV format: sambung's own documented columns, renamable in the YAML.

Any file-drop connector reads it with `format: generic`; `columns:` maps our names to the
headers in the merchant's file (`columns: {transaction_id: "No. Nota", total: "Jumlah"}`).

| column           | required | meaning                                              |
|------------------|----------|------------------------------------------------------|
| transaction_id   | yes      | the till's id of the sale                            |
| occurred_at      | yes      | date and time; zone-less times are the outlet's      |
| total            | yes      | amount paid                                          |
| tax              | no       | tax included in total                                |
| discount         | no       | order discount                                       |
| service_charge   | no       | service charge included in total                     |
| payment_method   | no       | the till's label (Tunai, QRIS, GoPay…)               |
| type             | no       | sale (default), refund or void                       |
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from sambung.models import Outlet, PaymentMethod, Record, Transaction, TransactionType

from .csvfiles import CellError, CsvStream, Row, RowError, map_rows

COLUMNS = (
    "transaction_id",
    "occurred_at",
    "total",
    "tax",
    "discount",
    "service_charge",
    "payment_method",
    "type",
)
REQUIRED = frozenset({"transaction_id", "occurred_at", "total"})
AMOUNT_COLUMNS = ("total", "tax", "discount", "service_charge")


def amount_headers(columns: Mapping[str, str]) -> tuple[str, ...]:
    """The headers, after renaming, whose cells decide the file's number style."""
    return tuple(columns.get(name, name) for name in AMOUNT_COLUMNS)


def parse_generic(
    stream: CsvStream, outlet: Outlet, source_system: str, columns: Mapping[str, str]
) -> Iterator[Record | RowError]:
    """Every row of a generic-format file as a transaction or a row error."""
    at = {
        name: stream.index(columns.get(name, name), required=name in REQUIRED) for name in COLUMNS
    }

    def mapper(row: Row) -> Transaction:
        occurred_at, business_date = row.moment(at["occurred_at"])
        total = row.amount(at["total"])
        tax = row.amount(at["tax"], required=False)
        discount = row.amount(at["discount"], required=False)
        service = row.amount(at["service_charge"], required=False)
        label = row.optional_text(at["payment_method"])
        kind = (row.optional_text(at["type"]) or "sale").lower()
        if kind not in TransactionType.__members__.values():
            raise CellError(columns.get("type", "type"), f"expected sale, refund or void: {kind!r}")
        return Transaction(
            outlet=outlet.id,
            source_system=source_system,
            external_id=row.text(at["transaction_id"]),
            type=TransactionType(kind),
            occurred_at=occurred_at,
            business_date=business_date,
            subtotal=total - tax - service + discount,
            discount=discount,
            service_charge=service,
            tax=tax,
            total=total,
            payment_method=PaymentMethod.from_label(label),
            payment_method_label=label,
        )

    return map_rows(stream, mapper)
