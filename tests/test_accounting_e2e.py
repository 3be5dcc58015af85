"""The daemon as a real process sums a day's sales up and posts them to a fake Accurate."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from sambung.testing.accounting import days_ago
from sambung.testing.daemon import HttpClient, free_port
from sambung_accurate.fake import FakeAccurate

from .payloads import PAWOON_SECRET, WEBHOOKS, pawoon_sale, signed

TOKEN, SIGNATURE_SECRET = "aat.e2e-accurate-token", "e2e-accurate-signature-secret"
ADMIN_TOKEN = "admin-token-for-accounting-e2e"


async def until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Wait (serving the fake meanwhile) until `condition`; generous for a slow machine."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.05)


async def test_a_days_sales_become_one_accurate_invoice_updated_by_a_late_sale(
    sambung_daemon: Any,
) -> None:
    fake = FakeAccurate(api_token=TOKEN, signature_secret=SIGNATURE_SECRET)
    admin_port = free_port()
    async with fake.serve() as url:
        config = {
            "server": {"admin": {"host": "127.0.0.1", "port": admin_port, "token": ADMIN_TOKEN}},
            "outlets": [
                {
                    "id": "kemang",
                    "name": "Kopi Senja Kemang",
                    "connectors": {"pawoon": {"mode": "webhook", "webhook_secret": PAWOON_SECRET}},
                }
            ],
            "sinks": {
                "books": {
                    "type": "accurate",
                    "api_token": TOKEN,
                    "signature_secret": SIGNATURE_SECRET,
                    "account_url": url,
                    "default_item": "100-PENJUALAN",
                    "default_customer": "C-UMUM",
                    "charge_items": {"tax": "210-PPN"},
                }
            },
            "summaries": {"after": "00:00", "every_seconds": 1},
        }
        daemon = await asyncio.to_thread(sambung_daemon, config)

        # Yesterday in Jakarta, whatever today is: the summary loop books closed days only, so a
        # fixed date would stop being booked once the clock stands before it.
        sold_at = days_ago(1, 20, 15)

        async def sell(transaction_id: str) -> None:
            body = pawoon_sale(transaction_id, timestamp=f"{sold_at:%Y-%m-%d %H:%M:%S}")
            headers = signed(body, PAWOON_SECRET, "X-Webhook-Signature")
            status, _ = await asyncio.to_thread(
                daemon.post, f"{WEBHOOKS}/pawoon/kemang", body, headers
            )
            assert status == 200

        await sell("TRX-1")
        await sell("TRX-2")
        await until(
            lambda: any(fake.total_of(n) == Decimal(55000) for n in fake.invoices),
            "the day's invoice with both sales",
        )
        [number] = fake.invoices
        assert fake.invoices[number].fields["transDate"] == f"{sold_at:%d/%m/%Y}"

        await sell("TRX-3")  # late, for the same business date
        await until(lambda: fake.total_of(number) == Decimal(82500), "the invoice updated")
        assert list(fake.invoices) == [number]
        # The summary loop runs under a lease, so only one replica sums a day up at a time.
        _, status = await asyncio.to_thread(
            HttpClient(f"http://127.0.0.1:{admin_port}").get,
            "/api/v1/status",
            {"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        assert any(lease["lease"] == "summaries" and lease["live"] for lease in status["leases"])
        assert TOKEN not in daemon.logs() and SIGNATURE_SECRET not in daemon.logs()
