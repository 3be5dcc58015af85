"""A fake Olsera open API: secret-key and refresh-token grants, closed orders by page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from sambung.testing.fake_vendor import FakeVendor
from sambung.testing.fakes import basket

from .client import ORDERS_PATH, TOKEN_PATH

_TIME = "%Y-%m-%d %H:%M:%S"


def order_row(sequence: int, at: datetime, tz: ZoneInfo) -> dict[str, Any]:
    """A closed order for basket `sequence` at `at`: UTC times plain, local in the `f` twins."""
    sale = basket(sequence)
    utc, local = at.astimezone(UTC).strftime(_TIME), at.astimezone(tz).strftime(_TIME)
    return {
        "id": 880_000 + sequence,
        "order_no": f"SO{sequence:07d}",
        "order_amount": f"{sale.subtotal:.2f}",
        "service_charge_amount": f"{sale.service_charge:.2f}",
        "tax_amount": f"{sale.tax:.2f}",
        "discount_amount": "0.00",
        "total_amount": f"{sale.total:.2f}",
        "is_paid": 1,
        "payment_type": sale.payment_label,
        "created_time": utc,
        "updated_time": utc,
        "fcreated_time": local,
        "fupdated_time": local,
        "items": [
            {
                "product_sku": line.item.sku,
                "product_name": line.item.name,
                "qty": line.quantity,
                "price": f"{line.item.price:.2f}",
                "amount": f"{line.total:.2f}",
            }
            for line in sale.lines
        ],
    }


class OlseraFake(FakeVendor):
    """Olsera's token endpoint and closed-orders list."""

    token_paths = (TOKEN_PATH,)

    def __init__(
        self,
        *,
        app_id: str = "olsera-app",
        secret_key: str = "olsera-secret",
        timezone: str = "Asia/Jakarta",
        **kw: Any,
    ) -> None:
        kw.setdefault("token_ttl", timedelta(days=1))
        super().__init__(**kw)
        self.credentials = {app_id: secret_key}
        self.tz = ZoneInfo(timezone)
        self.secret_grants = 0
        self.refresh_grants = 0

    def routes(self, app: web.Application) -> None:
        """Token and closed orders."""
        app.router.add_post(TOKEN_PATH, self.token)
        app.router.add_get(ORDERS_PATH, self.orders)

    def sale(self, sequence: int, at: datetime) -> dict[str, Any]:
        """Add closed order `sequence` at `at`."""
        row = order_row(sequence, at, self.tz)
        self.upsert(str(row["id"]), at.replace(microsecond=0), row)
        return row

    def seed(self, count: int, start: datetime, step: timedelta = timedelta(seconds=30)) -> None:
        """`count` closed orders, one every `step` from `start`."""
        for n in range(count):
            self.sale(n + 1, start + step * n)

    async def token(self, request: web.Request) -> web.Response:
        """`grant_type` secret_key or refresh_token."""
        body = await request.json()
        if body.get("grant_type") == "refresh_token":
            if body.get("refresh_token") not in self.refresh_tokens:
                return self.unauthorized("invalid refresh token")
            self.refresh_tokens.discard(body["refresh_token"])
            self.refresh_grants += 1
        elif self.credentials.get(body.get("app_id")) != body.get("secret_key"):
            return self.unauthorized("invalid app_id or secret_key")
        else:
            self.secret_grants += 1
        return web.json_response(self.issue_token())

    async def orders(self, request: web.Request) -> web.Response:
        """Orders closed on days in [start_date, end_date] (local), newest first, 20 a page."""
        if not self.bearer_ok(request):
            return self.unauthorized()
        query = request.query
        first = datetime.strptime(query["start_date"], "%Y-%m-%d").replace(tzinfo=self.tz)
        last = datetime.strptime(query["end_date"], "%Y-%m-%d").replace(tzinfo=self.tz)
        rows = list(reversed(self.changed_between(first, last + timedelta(days=1))))
        page = int(query.get("page", "1"))
        size = self.page_size
        chunk = rows[(page - 1) * size : page * size]
        last_page = max(1, -(-len(rows) // size))
        return web.json_response(
            {
                "data": [row.data for row in chunk],
                "meta": {"current_page": page, "last_page": last_page, "total": len(rows)},
            }
        )
