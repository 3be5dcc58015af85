"""The real-shaped pollers through the daemon as a real process: Pawoon and Olsera faked locally
serve rows as VENDORS.md says they look, at outlets in two time zones, and every stored sale
adds up (subtotal - discount + service + tax + rounding = total), carries its lines, and sits at
the instant and business date the till rang it up, either side of the outlet's midnight."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sambung.clock import SystemClock
from sambung.models import Transaction
from sambung.store.sqlite import SqliteStore
from sambung.testing.daemon import DaemonProcess
from sambung.testing.fake_vendor import FakeVendor
from sambung_olsera.fake import OlseraFake
from sambung_pawoon.fake import PawoonFake

from .waiting import until

SALES = 12
STEP = timedelta(minutes=7)  # SALES * STEP spans the outlet's midnight


def first_sale(zone: ZoneInfo) -> datetime:
    """Forty minutes before the outlet's last midnight, so the sales straddle it."""
    today = SystemClock().now().astimezone(zone).date()
    midnight = datetime(today.year, today.month, today.day, tzinfo=zone)
    return midnight - timedelta(minutes=40)


def outlet(outlet_id: str, zone: str, connectors: dict[str, Any]) -> dict[str, Any]:
    """One outlet whose connectors poll every 15 s and first look back two days."""
    polled = {"mode": "poll", "interval": "15s", "lookback": "2d"}
    return {
        "id": outlet_id,
        "name": outlet_id.title(),
        "timezone": zone,
        "connectors": {name: {**polled, **block} for name, block in connectors.items()},
    }


async def test_pawoon_and_olsera_sales_add_up_with_their_lines_at_the_till_s_instant(
    tmp_path: Path,
) -> None:
    jakarta, makassar = ZoneInfo("Asia/Jakarta"), ZoneInfo("Asia/Makassar")
    pawoon_kemang = PawoonFake(timezone="Asia/Jakarta")
    olsera_kemang = OlseraFake(timezone="Asia/Jakarta")
    pawoon_makassar = PawoonFake(timezone="Asia/Makassar")
    # Each connection's sales by the instant they were rung up (vendors name them differently).
    expected: dict[tuple[str, str], set[datetime]] = {}
    fakes: list[tuple[str, str, FakeVendor, ZoneInfo]] = [
        ("kemang", "pawoon", pawoon_kemang, jakarta),
        ("kemang", "olsera", olsera_kemang, jakarta),
        ("panakkukang", "pawoon", pawoon_makassar, makassar),
    ]
    for outlet_id, name, fake, zone in fakes:
        start = first_sale(zone)
        for n in range(SALES):
            fake.sale(n + 1, start + STEP * n)  # type: ignore[attr-defined]
        expected[(outlet_id, name)] = {start + STEP * n for n in range(SALES)}

    async with pawoon_kemang.serve(), olsera_kemang.serve(), pawoon_makassar.serve():
        pawoon_block = {"client_id": "pawoon-client", "client_secret": "pawoon-secret"}
        olsera_block = {"app_id": "olsera-app", "secret_key": "olsera-secret"}
        config = {
            "outlets": [
                outlet(
                    "kemang",
                    "Asia/Jakarta",
                    {
                        "pawoon": {**pawoon_block, "base_url": pawoon_kemang.url},
                        "olsera": {**olsera_block, "base_url": olsera_kemang.url},
                    },
                ),
                outlet(
                    "panakkukang",
                    "Asia/Makassar",
                    {"pawoon": {**pawoon_block, "base_url": pawoon_makassar.url}},
                ),
            ]
        }
        daemon = DaemonProcess(tmp_path, config)
        await asyncio.to_thread(daemon.start)
        store = SqliteStore(daemon.workdir / "sambung.db")
        await store.open()
        try:

            async def all_stored() -> bool:
                return len(await store.list_records(kind="transaction")) >= SALES * len(fakes)

            await until(all_stored)
            stored = await store.list_records(kind="transaction")
        finally:
            await store.close()
            await asyncio.to_thread(daemon.terminate)

    assert "Traceback" not in daemon.logs()
    zones = {"kemang": jakarta, "panakkukang": makassar}
    found: dict[tuple[str, str], set[datetime]] = {key: set() for key in expected}
    for record in stored:
        sale = Transaction.model_validate_json(record.payload)
        key = (sale.outlet, sale.source_system)
        what = f"{key} {sale.external_id}"
        assert sale.items, f"{what}: stored without its lines"
        assert sale.tax > 0, f"{what}: stored without its tax"
        assert sale.subtotal - sale.discount + sale.service_charge + sale.tax + sale.rounding == (
            sale.total
        ), what
        assert sale.occurred_at in expected[key], what
        assert sale.business_date == sale.occurred_at.astimezone(zones[sale.outlet]).date(), what
        found[key].add(sale.occurred_at)
    assert found == expected
    # Both sides of each outlet's midnight are there: the business date follows the zone.
    for outlet_id, name, _, _ in fakes:
        days = {
            Transaction.model_validate_json(r.payload).business_date
            for r in stored
            if r.outlet == outlet_id and r.source_system == name
        }
        assert len(days) == 2, (outlet_id, name, days)
