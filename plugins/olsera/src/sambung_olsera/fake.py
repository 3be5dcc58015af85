"""A fake Olsera open API: secret-key and refresh-token grants, closed orders by page (no lines),
each order's lines from `closeorder/detail?id=`, and the 404 "Data not found" of an empty range."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from sambung.testing.fake_vendor import FakeVendor
from sambung.testing.fakes import basket

from .client import DETAIL_PATH, ORDERS_PATH, TOKEN_PATH

_TIME = "%Y-%m-%d %H:%M:%S"


def order_row(sequence: int, at: datetime, tz: ZoneInfo) -> dict[str, Any]:
    """A closed order for basket `sequence` rung up at `at`, as the list answers it: the day in
    `order_date` (always midnight), the till's time in `order_time`, server times elsewhere."""
    sale = basket(sequence)
    local = at.astimezone(tz)
    # Server times are in another zone than the till: a mapping that reads them is wrong.
    server = at.astimezone(SERVER_ZONE).strftime(_TIME)
    return {
        "id": 880_000 + sequence,
        "order_no": f"SO{sequence:07d}",
        "order_date": f"{local:%Y-%m-%d} 00:00:00",
        "order_time": f"{local:%H:%M:%S}",
        "order_amount": f"{sale.subtotal:.2f}",
        "service_charge_amount": f"{sale.service_charge:.2f}",
        "tax_amount": f"{sale.tax:.2f}",
        "discount_amount": "0.00",
        "total_amount": f"{sale.total:.2f}",
        "is_paid": 1,
        "status": "Z",
        "payment_type": sale.payment_label,
        "created_time": server,
        "modified_time": server,
    }


def order_items(sequence: int) -> list[dict[str, Any]]:
    """The `orderitems` of order `sequence`'s detail."""
    return [
        {
            "product_id": 7000 + n,
            "product_name": line.item.name,
            "product_sku": line.item.sku,
            "qty": f"{line.quantity:.2f}",
            "price": f"{line.item.price:.2f}",
            "amount": f"{line.total:.2f}",
            "discount": "0.00",
            "addon_price": "0.00",
        }
        for n, line in enumerate(basket(sequence).lines)
    ]


SERVER_ZONE = ZoneInfo("Asia/Singapore")


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
        app.router.add_get(DETAIL_PATH, self.detail)

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
        if not rows:
            return not_found()
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

    async def detail(self, request: web.Request) -> web.Response:
        """One order with its `orderitems`."""
        if not self.bearer_ok(request):
            return self.unauthorized()
        row = self.rows.get(request.query.get("id", ""))
        if row is None:
            return not_found()
        sequence = int(row.data["id"]) - 880_000
        return web.json_response({"data": {**row.data, "orderitems": order_items(sequence)}})


def not_found() -> web.Response:
    """Olsera's answer to a range (or id) with no data."""
    error = {"id": "404", "message": "Data not found", "status_code": 404, "error": "Not Found"}
    return web.json_response({"error": error}, status=404)
