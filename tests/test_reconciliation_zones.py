"""Reconciliation across time zones: an outlet in Asia/Makassar (WITA) whose gateway reports a
payment at 23:30 WIB, which is 00:30 WITA the next day and belongs to that day, on both stores.
The payments are mapped by the Xendit plugin itself, as its callbacks would be."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from sambung.clock import SystemClock
from sambung.config import load_config
from sambung.delivery.reconciliation import ReconciliationService
from sambung.models import Outlet, Reconciliation, Transaction
from sambung.plugins import load_plugins
from sambung.store import IngestRequest, open_store
from sambung.testing.manual_clock import ManualClock
from sambung_xendit import fake
from sambung_xendit.mapping import to_payment

WIB, WITA = ZoneInfo("Asia/Jakarta"), ZoneInfo("Asia/Makassar")
OUTLET = "panakkukang"


def invoice(reference: str, amount: int, paid_at: datetime) -> dict[str, Any]:
    """A paid Xendit invoice for `reference`, as its callback carries it (QRIS)."""
    row = fake.invoice(1, paid_at - timedelta(minutes=2), outlet=OUTLET)
    row = {**row, "id": f"inv-{reference}", "external_id": reference, "amount": amount}
    return fake.paid(row, paid_at, channel=0)


def qris_sale(external_id: str, total: int, at: datetime) -> Transaction:
    """A QRIS sale rung up at a Makassar till."""
    return Transaction.rung_up(
        occurred_at=at,
        tz=WITA,
        total=Decimal(total),
        payment_label="QRIS",
        outlet=OUTLET,
        source_system="pawoon",
        external_id=external_id,
    )


async def test_a_late_evening_wib_payment_belongs_to_the_next_wita_day(
    tmp_path: Path, sambung_store_url: str
) -> None:
    today = SystemClock().now().astimezone(WITA).date()
    day = today - timedelta(days=3)  # closed, whatever the hour
    eve = day - timedelta(days=1)
    document = {
        "outlets": [
            {
                "id": OUTLET,
                "name": "Panakkukang",
                "timezone": "Asia/Makassar",
                "connectors": {
                    "pawoon": {"mode": "webhook", "webhook_secret": "pawoon-test-secret"},
                    "xendit": {"mode": "webhook", "callback_token": "xendit-test-token"},
                },
            }
        ],
        "summaries": {"after": "23:30", "backfill_days": 5},
    }
    path = tmp_path / "sambung.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    loaded = load_config(path, load_plugins())
    outlet = Outlet(OUTLET, "Panakkukang", WITA)
    clock = ManualClock()
    store = open_store(sambung_store_url, base_dir=tmp_path, clock=clock)
    await store.open()
    try:
        records = [
            # 22:00 WITA on the eve, paid 23:10 WITA (22:10 WIB): both on the eve.
            qris_sale("E-1", 30000, datetime.combine(eve, time(22, 0), tzinfo=WITA)),
            to_payment(
                invoice("E-1", 30000, datetime.combine(eve, time(22, 10), tzinfo=WIB)), outlet
            ),
            # 00:20 WITA on the day; the gateway says paid at 23:30 WIB the evening before,
            # which is 00:30 WITA: the day's, not the eve's.
            qris_sale("D-1", 45000, datetime.combine(day, time(0, 20), tzinfo=WITA)),
            to_payment(
                invoice("D-1", 45000, datetime.combine(eve, time(23, 30), tzinfo=WIB)), outlet
            ),
        ]
        routes = [loaded.sinks_for(r.outlet, r.kind) for r in records]
        await store.ingest(IngestRequest(records=records, routes=routes))
        service = ReconciliationService(store, loaded, clock)
        await service.run_once()

        by_day: dict[str, Reconciliation] = {}
        for stored in await service.stored(OUTLET, [eve, day]):
            by_day[stored.result.business_date.isoformat()] = stored.result
        assert set(by_day) == {eve.isoformat(), day.isoformat()}
        evening, next_day = by_day[eve.isoformat()], by_day[day.isoformat()]
        assert [(m.sale, m.payment) for m in evening.matched] == [("pawoon:E-1", "xendit:inv-E-1")]
        assert [(m.sale, m.payment) for m in next_day.matched] == [("pawoon:D-1", "xendit:inv-D-1")]
        assert evening.status == next_day.status == "matched"
        # Xendit's QRIS fee (0.7 %), exact to the rupiah, kept apart from the gross.
        assert (next_day.gross, next_day.fees, next_day.net) == (45000, 315, 44685)
    finally:
        await store.close()
