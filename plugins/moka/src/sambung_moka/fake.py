"""What Moka sends, generated: example webhook envelopes for the simulator and tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from aiohttp import web
from sambung.testing.fakes import basket, json_bytes
from sambung.testing.oauth_server import FakeAuthorizationServer

JAKARTA = ZoneInfo("Asia/Jakarta")


def webhook_body(sequence: int, now: datetime, moka_outlet_id: str = "41230") -> dict[str, Any]:
    """Mostly `moka.transaction.created`; every fourth an `updated` of the sale before it (with
    a newer `updated_at`), every ninth a `refunded`. `now` must be aware (Moka sends offsets)."""
    event = "moka.transaction.created"
    transaction_id, updated_at = 900_000 + sequence, now
    if sequence % 9 == 0:
        event, transaction_id = "moka.transaction.refunded", 900_000 + sequence - 1
    elif sequence % 4 == 0:
        event, transaction_id = "moka.transaction.updated", 900_000 + sequence - 1
        updated_at = now + timedelta(seconds=1)
    sale = basket(transaction_id)
    if event == "moka.transaction.updated":
        sale = basket(transaction_id + 1_000_000)  # the cashier changed the order
    tax = (sale.subtotal * Decimal("0.0151")).quantize(Decimal("0.0001"))  # Moka's fractions
    total = sale.subtotal + sale.service_charge + tax
    transaction = {
        "id": transaction_id,
        "payment_no": f"P{transaction_id}",
        "date": (now - timedelta(minutes=1)).isoformat(timespec="seconds"),
        "updated_at": updated_at.isoformat(timespec="seconds"),
        "subtotal": sale.subtotal,
        "total_collected": total,
        "total_discounts": 0,
        "total_gratuities": sale.service_charge,
        "total_taxes": tax,
        "total_gross_sales": sale.subtotal,
        "total_net_sales": sale.subtotal,
        "payment_type": sale.payment_label,
        "items": [
            {
                "id": index + 1,
                "variant_id": 100 + index,
                "variant_name": "Regular",
                "name": line.item.name,
                "sku": line.item.sku,
                "price": line.item.price,
                "quantity": line.quantity,
                "category_name": "Menu",
                "gross_sales": line.total,
                "net_sales": line.total,
                "total_price": line.total,
                "modifiers": [],
            }
            for index, line in enumerate(sale.lines)
        ],
        "payment_taxes": [],
        "payment_gratuities": [],
        "payment_discounts": [],
    }
    header = {
        "timestamp": updated_at.isoformat(timespec="seconds"),
        "event_name": event,
        "event_id": f"evt-{sequence:08d}",
        "outlet_id": moka_outlet_id,
        "version": 1,
    }
    return {"header": header, "body": {"transaction": transaction}}


def webhook_bytes(sequence: int, now: datetime, moka_outlet_id: str = "41230") -> bytes:
    """`webhook_body` as Moka posts it: amounts as bare JSON numbers, fractions and all."""
    return json_bytes(webhook_body(sequence, now, moka_outlet_id))


def export_csv(sequence: int, now: datetime, *, rows: int = 8, bad_row: bool = False) -> bytes:
    """A Moka CSV export (`transaction_id, grand_total, created_at`); with `bad_row`, one row
    has no grand total, so the simulator shows a file landing in `failed/`."""
    lines = ["transaction_id,grand_total,created_at"]
    for n in range(rows):
        sale = basket(sequence * 100 + n)
        total = "" if bad_row and n == rows // 2 else f"{sale.total:.2f}"
        lines.append(f"MCSV-{now:%Y%m%d}-{sequence:04d}-{n:02d},{total},{now:%Y-%m-%d %H:%M}")
    return ("\n".join(lines) + "\n").encode()


def payment_row(sequence: int, at: datetime, tz: ZoneInfo = JAKARTA) -> dict[str, Any]:
    """A payment of `get_latest_transactions` for basket `sequence`, made at `at` (aware)."""
    sale = basket(sequence)
    tax = (sale.subtotal * Decimal("0.0151")).quantize(Decimal("0.0001"))
    stamp = at.isoformat(timespec="seconds")
    local = at.astimezone(tz)
    total = sale.subtotal + sale.service_charge + tax
    # Moka rounds cash payments to Rp 100 and says so in total_rounding_amount.
    rounding = (-(-total // 100) * 100 - total) if sale.payment_label == "Tunai" else Decimal(0)
    return {
        "id": 700_000 + sequence,
        "payment_no": f"P{700_000 + sequence}",
        "invoice_no": f"INV-{sequence:06d}",
        "created_at": stamp,
        "updated_at": stamp,
        # Separate fields in the report rows: the local day, and the time of day.
        "transaction_date": f"{local:%Y-%m-%d}",
        "transaction_time": f"{local:%H:%M:%S}",
        "total_rounding_amount": rounding,
        "total_refund": 0,
        "refund_amount": 0,
        "is_refund_breakdown": False,
        "table_name": f"Meja {sequence % 12 + 1}",
        "subtotal": sale.subtotal,
        "discounts": 0,
        "gratuities": sale.service_charge,
        "taxes": tax,
        "total_collected": total + rounding,
        "payment_type": "custom",
        "payment_type_label": sale.payment_label,
        "is_refunded": False,
        "payment_taxes": [],
        "payment_gratuities": [],
        "payment_discounts": [],
        "payment_refunds": [],
        "checkouts": [
            {
                "item_name": line.item.name,
                "sku": line.item.sku,
                "quantity": line.quantity,
                "item_price": line.item.price,
                "total_price": line.total,
                "discount_amount": 0,
            }
            for line in sale.lines
        ],
    }


class MokaFake(FakeAuthorizationServer):
    """Moka's OAuth (authorize, token with rotation: core's fake authorization server) and
    `get_latest_transactions` with `next_url` paging."""

    def __init__(
        self,
        *,
        moka_outlet_id: str = "41230",
        access_token: str | None = "moka-access",
        refresh_token: str | None = "moka-refresh",
        client_id: str = "moka-client",
        client_secret: str = "moka-client-secret",
        timezone: str = "Asia/Jakarta",
        **kw: Any,
    ) -> None:
        super().__init__(client_id=client_id, client_secret=client_secret, client_auth="body", **kw)
        self.moka_outlet_id = moka_outlet_id
        self.tz = timezone
        # Tokens handed out before this fake started (the YAML seed of older configs).
        if access_token is not None:
            self.tokens[access_token] = datetime.max.replace(tzinfo=UTC)
        if refresh_token is not None:
            self.refresh_tokens.add(refresh_token)

    def routes(self, app: web.Application) -> None:
        """OAuth's routes and `GET /v3/outlets/{id}/reports/get_latest_transactions`."""
        super().routes(app)
        app.router.add_get("/v3/outlets/{outlet_id}/reports/get_latest_transactions", self.latest)

    def sale(self, sequence: int, at: datetime) -> dict[str, Any]:
        """Add payment `sequence` made at `at`."""
        row = payment_row(sequence, at.replace(microsecond=0))
        self.upsert(str(row["id"]), at.replace(microsecond=0), row)
        return row

    def refund(self, id: str, at: datetime) -> None:
        """Refund a stored payment at `at` (it changes, so it is polled again)."""
        stamp = at.replace(microsecond=0)
        data = self.rows[id].data
        given = data["total_collected"]
        row = {
            **data,
            "is_refunded": True,
            "total_refund": given,
            "refund_amount": given,
            "updated_at": stamp.isoformat(),
        }
        self.upsert(id, stamp, row)

    def seed(self, count: int, start: datetime, step: timedelta = timedelta(seconds=30)) -> None:
        """`count` payments, one every `step` from `start`."""
        for n in range(count):
            self.sale(n + 1, start + step * n)

    async def latest(self, request: web.Request) -> web.Response:
        """Payments updated in [since, until], oldest first; `next_url` carries a keyset."""
        if not self.bearer_ok(request):
            return self.unauthorized()
        if request.match_info["outlet_id"] != self.moka_outlet_id:
            return web.json_response({"message": "outlet not found"}, status=404)
        query = request.query
        try:
            since, until = _bound(query["since"], False), _bound(query["until"], True)
        except (KeyError, ValueError):
            return web.json_response(
                {"meta": {"code": 422, "errors": "bad since/until"}}, status=422
            )
        per_page = int(query.get("per_page", "50"))
        after = (query.get("after_at"), int(query.get("after_seq", "0")))
        rows = [
            row
            for row in self.changed_between(since, until)
            if after[0] is None or (row.changed_at.isoformat(), row.sequence) > (after[0], after[1])
        ]
        chunk = rows[:per_page]
        completed = len(rows) <= per_page
        next_url = None
        if not completed:
            last = chunk[-1]
            keyset = {
                **query,
                "after_at": last.changed_at.isoformat(),
                "after_seq": str(last.sequence),
            }
            next_url = f"{self.url}{request.path}?{urlencode(keyset)}"
        body = {
            "data": {
                "payments": [row.data for row in chunk],
                "completed": completed,
                "next_url": next_url,
            }
        }
        return web.Response(body=json_bytes(body), content_type="application/json")


def _bound(value: str, end: bool) -> datetime:
    """`since`/`until` as epoch seconds or as a DD/MM/YYYY day (Jakarta), both accepted."""
    if value.isdigit():
        return datetime.fromtimestamp(int(value), UTC)
    day = datetime.strptime(value, "%d/%m/%Y").replace(tzinfo=JAKARTA)
    return day + timedelta(days=1, microseconds=-1) if end else day
