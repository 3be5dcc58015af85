"""What Pawoon sends, generated: example webhook bodies for the simulator and tests."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from sambung.testing.fake_vendor import FakeVendor
from sambung.testing.fakes import MENU, basket


def webhook_body(sequence: int, now: datetime) -> dict[str, Any]:
    """A `transaction.created` (or, every fifth, an `inventory.updated`) body at `now` (local)."""
    if sequence % 5 == 0:
        item = MENU[sequence % len(MENU)]
        return {
            "event_type": "inventory.updated",
            "data": {
                "product_id": f"P-{item.sku}",
                "sku": item.sku,
                "name": item.name,
                "stock": 40 - sequence % 37,
                "unit": "pcs",
                "updated_at": now.strftime("%Y-%m-%d %H:%M:%S"),
            },
        }
    sale = basket(sequence)
    return {
        "event_type": "transaction.created",
        "data": {
            "transaction_id": f"TRX-{now:%Y%m%d}-{sequence:06d}",
            # Pawoon sends zone-less device time: the outlet's local clock.
            "timestamp": now.strftime("%Y-%m-%d %H:%M:%S"),
            "total": int(sale.total),
            "tax": int(sale.tax),
            "service_charge": int(sale.service_charge),
            "payment_method": sale.payment_label,
            "items": [
                {
                    "sku": line.item.sku,
                    "name": line.item.name,
                    "qty": line.quantity,
                    "price": int(line.item.price),
                }
                for line in sale.lines
            ],
        },
    }


def webhook_bytes(sequence: int, now: datetime) -> bytes:
    """`webhook_body` serialised as Pawoon would post it."""
    return json.dumps(webhook_body(sequence, now)).encode()


def export_csv(sequence: int, now: datetime, *, rows: int = 8, bad_row: bool = False) -> bytes:
    """A Pawoon CSV export as a back office saves it (`;`, `Rp 27.500`); with `bad_row`, one
    row carries a total no one can read, so the simulator shows a file landing in `failed/`."""
    lines = ["Date;Transaction ID;Total;Tax;Items"]
    for n in range(rows):
        sale = basket(sequence * 100 + n)
        total = _rupiah(sale.total)
        if bad_row and n == rows // 2:
            total = "Rp 27.500,-"
        items = ", ".join(f"{line.item.name} x{line.quantity}" for line in sale.lines)
        lines.append(
            f"{now:%Y-%m-%d %H:%M:%S};CSV-{now:%Y%m%d}-{sequence:04d}-{n:02d};{total};"
            f"{_rupiah(sale.tax)};{items}"
        )
    return ("\n".join(lines) + "\n").encode()


def _rupiah(amount: Decimal) -> str:
    """`Rp 27.500`, as Indonesian back offices print whole Rupiah."""
    return f"Rp {int(amount):,}".replace(",", ".")


def transaction_row(sequence: int, at: datetime) -> dict[str, Any]:
    """A row of Pawoon's `GET /transactions` for basket `sequence`, at local till time `at`,
    shaped as working integrations read it (VENDORS.md): every seventh has a bill discount,
    every fourth is split over two payments."""
    sale = basket(sequence)
    discount = Decimal(2000) if sequence % 7 == 0 else Decimal(0)
    total = sale.total - discount
    payments = [{"method": sale.payment_label, "amount": int(total)}]
    if sequence % 4 == 0 and total > 10000:
        payments = [
            {"method": sale.payment_label, "amount": int(total) - 10000},
            {"method": "Tunai", "amount": 10000},
        ]
    return {
        "id": 5_100_000 + sequence,
        "receipt_code": f"RC{sequence:08d}",
        "device_timestamp": at.strftime("%Y-%m-%d %H:%M:%S"),
        "sales_type_name": "Dine In" if sequence % 3 else "Take Away",
        "total_discount": int(discount),
        "total_service": int(sale.service_charge),
        "total_tax": int(sale.tax),
        "final_amount": int(total),
        "total_payment": int(total),
        "details": [
            {
                "product_id": f"P-{line.item.sku}",
                "product_name": line.item.name,
                "qty": line.quantity,
                "price": int(line.item.price),
                "subtotal": int(line.total),
            }
            for line in sale.lines
        ],
        "payments": payments,
    }


class PawoonFake(FakeVendor):
    """Pawoon's open API: client-credentials tokens and `GET /transactions` by device time."""

    token_paths = ("/oauth/token",)

    def __init__(
        self,
        *,
        client_id: str = "pawoon-client",
        client_secret: str = "pawoon-secret",
        timezone: str = "Asia/Jakarta",
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.credentials = {client_id: client_secret}
        self.tz = ZoneInfo(timezone)

    def routes(self, app: web.Application) -> None:
        """`POST /oauth/token`, `GET /transactions`."""
        app.router.add_post("/oauth/token", self.token)
        app.router.add_get("/transactions", self.transactions)

    def sale(self, sequence: int, at: datetime) -> dict[str, Any]:
        """Add sale `sequence` rung up at `at` (aware)."""
        row = transaction_row(sequence, at.astimezone(self.tz))
        self.upsert(row["id"], at.replace(microsecond=0), row)
        return row

    def seed(self, count: int, start: datetime, step: timedelta = timedelta(seconds=30)) -> None:
        """`count` sales, one every `step` from `start`."""
        for n in range(count):
            self.sale(n + 1, start + step * n)

    async def token(self, request: web.Request) -> web.Response:
        """Client-credentials grant."""
        body = await request.json()
        if self.credentials.get(body.get("client_id")) != body.get("client_secret"):
            return self.unauthorized("invalid_client")
        return web.json_response(self.issue_token())

    async def transactions(self, request: web.Request) -> web.Response:
        """Rows whose device time is within the window, oldest first."""
        if not self.bearer_ok(request):
            return self.unauthorized()
        query = request.query
        try:
            since = datetime.fromisoformat(query["start_device_timestamp"]).replace(tzinfo=self.tz)
            until = datetime.fromisoformat(query["end_device_timestamp"]).replace(tzinfo=self.tz)
            page, per_page = int(query.get("page", "1")), int(query.get("per_page", "100"))
        except (KeyError, ValueError):
            return web.json_response({"message": "invalid parameters"}, status=422)
        rows = self.changed_between(since, until)
        chunk = rows[(page - 1) * per_page : page * per_page]
        meta = {"count": len(chunk), "total": len(rows), "per_page": per_page}
        body = {"data": [r.data for r in chunk], "meta": meta}
        return web.json_response(body)
