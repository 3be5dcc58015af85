"""A fake Qasir API for tests, the simulator and the benchmark: bearer key, keyset-friendly
`from_date` filter with page/per_page, realistic sales, and the test kit's injected faults."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from sambung.testing.fake_vendor import FakeVendor
from sambung.testing.fakes import basket, json_bytes


def transaction_row(sequence: int, created_at: datetime, tz: ZoneInfo) -> dict[str, Any]:
    """A Qasir transaction row for basket `sequence`, times as zone-less local text."""
    sale = basket(sequence)
    local = created_at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")
    return {
        "id": f"QSR-{sequence:07d}",
        "transaction_no": f"INV/{created_at.astimezone(tz):%Y%m%d}/{sequence:05d}",
        "status": "paid",
        "created_at": local,
        "updated_at": local,
        "subtotal": sale.subtotal,
        "discount": 0,
        "service_charge": sale.service_charge,
        "tax": sale.tax,
        "total": sale.total,
        "payment_method": sale.payment_label,
        "items": [
            {
                "sku": line.item.sku,
                "name": line.item.name,
                "qty": line.quantity,
                "price": line.item.price,
                "discount": 0,
                "total": line.total,
            }
            for line in sale.lines
        ],
    }


class QasirFake(FakeVendor):
    """Qasir's `GET /v1/transactions` as far as the seed describes it."""

    def __init__(
        self, *, api_key: str = "qasir-test-key", timezone: str = "Asia/Jakarta", **kw: Any
    ) -> None:
        super().__init__(**kw)
        self.api_keys = {api_key}
        self.tz = ZoneInfo(timezone)

    def routes(self, app: web.Application) -> None:
        """`GET /v1/transactions`."""
        app.router.add_get("/v1/transactions", self.transactions)

    def sale(self, sequence: int, at: datetime) -> dict[str, Any]:
        """Add sale `sequence` made at `at`; returns its row."""
        row = transaction_row(sequence, at, self.tz)
        self.upsert(row["id"], at.replace(microsecond=0), row)
        return row

    def update(self, id: str, at: datetime, **changes: Any) -> dict[str, Any]:
        """Change a stored sale at `at` (a void, a corrected total)."""
        local = at.astimezone(self.tz).strftime("%Y-%m-%d %H:%M:%S")
        row = {**self.rows[id].data, **changes, "updated_at": local}
        self.upsert(id, at.replace(microsecond=0), row)
        return row

    def seed(self, count: int, start: datetime, step: timedelta = timedelta(seconds=30)) -> None:
        """`count` sales, one every `step` from `start`."""
        for n in range(count):
            self.sale(n + 1, start + step * n)

    async def transactions(self, request: web.Request) -> web.Response:
        """Rows changed at or after `from_date`, oldest first, `per_page` from `page`."""
        header = request.headers.get("Authorization", "")
        if header.removeprefix("Bearer ").strip() not in self.api_keys:
            return self.unauthorized("API key tidak valid")
        try:
            since = datetime.fromisoformat(request.query["from_date"])
            page = int(request.query.get("page", "1"))
            per_page = int(request.query.get("per_page", str(self.page_size)))
        except (KeyError, ValueError):
            return web.json_response({"message": "from_date tidak valid"}, status=422)
        if since.tzinfo is None:
            since = since.replace(tzinfo=self.tz)
        # Qasir compares in whole seconds.
        rows = self.changed_between(since.replace(microsecond=0), None)
        chunk = rows[(page - 1) * per_page : page * per_page]
        last_page = max(1, -(-len(rows) // per_page))
        body = {
            "transactions": [row.data for row in chunk],
            "meta": {"page": page, "per_page": per_page, "last_page": last_page},
        }
        return web.Response(body=json_bytes(body), content_type="application/json")
