"""Shared fixtures for core's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sambung.clock import Clock
from sambung.models import LineItem, Transaction
from sambung.store import Store, open_store


@pytest.fixture
async def store(sambung_store_url: str, tmp_path: Path, clock: Clock) -> AsyncIterator[Store]:
    """An open, migrated store of each backend in turn: SQLite in tmp_path, then PostgreSQL."""
    opened = open_store(sambung_store_url, base_dir=tmp_path, clock=clock)
    await opened.open()
    yield opened
    await opened.close()


def sale(
    external_id: str = "TRX-1",
    *,
    total: str = "27500",
    outlet: str = "kemang",
    updated_at: datetime | None = None,
) -> Transaction:
    """A small sale for store tests."""
    occurred = datetime(2026, 11, 26, 13, 15, tzinfo=UTC)
    amount = Decimal(total)
    return Transaction(
        outlet=outlet,
        source_system="pawoon",
        external_id=external_id,
        occurred_at=occurred,
        business_date=occurred.date(),
        subtotal=amount,
        total=amount,
        items=(
            LineItem(name="Es Kopi Susu", quantity=Decimal(1), unit_price=amount, total=amount),
        ),
        source_updated_at=updated_at,
    )
