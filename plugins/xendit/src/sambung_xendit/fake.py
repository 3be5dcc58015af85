"""A fake Xendit for tests, the simulator and benchmarks: invoices moving through their
lifecycle, `GET /v2/invoices` (HTTP Basic, `statuses[]`, `created_after`, `limit` ≤ 100,
`last_invoice_id`), invoice callbacks sent with `x-callback-token`, and the test kit's faults
plus Xendit's own 429 (`RATE_LIMIT_EXCEEDED` with `Rate-Limit-*` headers)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
from aiohttp import web
from sambung.testing.fake_vendor import FakeVendor
from sambung.testing.fakes import basket, json_bytes

from .client import CALLBACK_HEADER, MAX_LIMIT, xendit_time

USER_ID = "5f9a3b8c1d2e4f0012a3b4c5"
# How Xendit's invoices are paid here, with its fee to the merchant (VAT included).
CHANNELS: tuple[tuple[str, str, Decimal | None, Decimal], ...] = (
    # (payment_method, payment_channel, fixed fee, percentage fee)
    ("QR_CODE", "QRIS", None, Decimal("0.007")),
    ("BANK_TRANSFER", "BCA", Decimal(4440), Decimal(0)),
    ("EWALLET", "OVO", None, Decimal("0.0167")),
    ("EWALLET", "SHOPEEPAY", None, Decimal("0.02")),
    ("BANK_TRANSFER", "MANDIRI", Decimal(4440), Decimal(0)),
    ("CREDIT_CARD", "CREDIT_CARD", Decimal(2220), Decimal("0.0322")),
)


def invoice_id(sequence: int) -> str:
    """A 24-hex invoice id, as Xendit's look, the same for the same sequence."""
    return hashlib.sha256(f"invoice-{sequence}".encode()).hexdigest()[:24]


def invoice(sequence: int, created: datetime, *, outlet: str = "kemang") -> dict[str, Any]:
    """A fresh `PENDING` invoice for basket `sequence`, issued at `created`."""
    sale = basket(sequence)
    return {
        "id": invoice_id(sequence),
        "external_id": f"{outlet}-order-{sequence}",
        "user_id": USER_ID,
        "status": "PENDING",
        "merchant_name": "Kopi Senja",
        "amount": sale.total,
        "payer_email": f"pelanggan{sequence % 97}@example.co.id",
        "description": ", ".join(f"{line.item.name} x{line.quantity}" for line in sale.lines),
        "expiry_date": xendit_time(created + timedelta(hours=24)),
        "invoice_url": f"https://checkout-staging.xendit.co/web/{invoice_id(sequence)}",
        "currency": "IDR",
        "created": xendit_time(created),
        "updated": xendit_time(created),
        "items": [
            {"name": line.item.name, "quantity": line.quantity, "price": line.item.price}
            for line in sale.lines
        ],
    }


# The index in `CHANNELS` of a channel for each unified payment method.
_METHOD_CHANNEL = {"qris": 0, "bank_transfer": 1, "ewallet": 2, "card": 5}


def channel_for(method: str) -> int:
    """The index in `CHANNELS` of a channel that pays by `method` (`qris`, `ewallet`…)."""
    return _METHOD_CHANNEL.get(method, 0)


def paid(row: dict[str, Any], at: datetime, channel: int = 0) -> dict[str, Any]:
    """`row` paid at `at` through one of `CHANNELS`."""
    method, name, fixed, rate = CHANNELS[channel % len(CHANNELS)]
    total = Decimal(row["amount"])
    fee = fixed if fixed is not None else (total * rate).quantize(Decimal(1))
    return {
        **row,
        "status": "PAID",
        "paid_amount": total,
        "paid_at": xendit_time(at),
        "updated": xendit_time(at),
        "payment_method": method,
        "payment_channel": name,
        "bank_code": name if method == "BANK_TRANSFER" else None,
        "payment_destination": "8808012345678901" if method == "BANK_TRANSFER" else None,
        # As in real callbacks: the fee the merchant bears shows in the received amount and in
        # `fees[]`, while `fees_paid_amount` (what the payer paid in fees) is often 0.
        "fees_paid_amount": 0 if method == "EWALLET" else fee,
        "adjusted_received_amount": total - fee,
        "fees": [{"type": "Xendit Fee", "value": fee}],
        "payment_method_id": f"pm-{row['id']}",
        "payment_details": {"source": name, "receipt_id": f"R{row['id'][:12]}"},
    }


def callback_headers(token: str) -> dict[str, str]:
    """The headers Xendit sends with a callback."""
    return {
        CALLBACK_HEADER: token,
        "Content-Type": "application/json",
        "webhook-id": f"whk-{secrets.token_hex(8)}",
    }


class XenditFake(FakeVendor):
    """Xendit's invoices: `GET /v2/invoices`, and callbacks sent on request."""

    def __init__(
        self,
        *,
        secret_key: str = "xnd_development_fake",
        callback_token: str = "xendit-callback-token",
        outlet: str = "kemang",
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.secret_keys = {secret_key}
        self.callback_token = callback_token
        self.outlet = outlet

    def routes(self, app: web.Application) -> None:
        """`GET /v2/invoices`."""
        app.router.add_get("/v2/invoices", self.list_invoices)

    # -- invoices ----------------------------------------------------------------------------

    def put(self, row: dict[str, Any]) -> dict[str, Any]:
        """Store an invoice as it is now."""
        self.upsert(row["id"], datetime.fromisoformat(row["updated"]), row)
        return row

    def create(self, sequence: int, at: datetime) -> dict[str, Any]:
        """Issue invoice `sequence` at `at` (PENDING)."""
        return self.put(invoice(sequence, at, outlet=self.outlet))

    def pay(self, id: str, at: datetime, channel: int = 0) -> dict[str, Any]:
        """The customer pays invoice `id` at `at`."""
        return self.put(paid(self.rows[id].data, at, channel))

    def settle(self, id: str, at: datetime) -> dict[str, Any]:
        """The funds of a paid invoice settle into the merchant's balance at `at`."""
        return self.put({**self.rows[id].data, "status": "SETTLED", "updated": xendit_time(at)})

    def expire(self, id: str, at: datetime) -> dict[str, Any]:
        """Invoice `id` expires unpaid at `at`."""
        return self.put({**self.rows[id].data, "status": "EXPIRED", "updated": xendit_time(at)})

    def sale(self, sequence: int, at: datetime) -> dict[str, Any]:
        """Invoice `sequence`, issued two minutes before `at` and paid at `at` (simulator)."""
        self.create(sequence, at - timedelta(minutes=2))
        return self.pay(invoice_id(sequence), at, channel=sequence)

    def seed(self, count: int, start: datetime, step: timedelta = timedelta(seconds=30)) -> None:
        """`count` paid invoices, one every `step` from `start`."""
        for n in range(count):
            self.sale(n + 1, start + step * n + timedelta(minutes=2))

    # -- callbacks ---------------------------------------------------------------------------

    def callback(self, id: str, status: str | None = None) -> bytes:
        """The callback body of invoice `id` as it is now (or as it was at `status`)."""
        row = self.rows[id].data
        if status is not None and status != row["status"]:
            row = {**row, "status": status}
        return json_bytes({k: v for k, v in row.items() if k != "invoice_url"})

    async def send_callback(
        self, url: str, body: bytes, *, token: str | None = None
    ) -> tuple[int, Any]:
        """POST a callback `body` to `url` with the callback token (or another `token`)."""
        headers = callback_headers(self.callback_token if token is None else token)
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=body, headers=headers) as answer,
        ):
            return answer.status, await answer.json(content_type=None)

    # -- faults ------------------------------------------------------------------------------

    def rate_limit(self, reset_seconds: int, *, times: int = 1) -> None:
        """Answer the next `times` list calls with Xendit's 429 and its `Rate-Limit-*` headers."""
        self.faults.fail(
            429,
            times=times,
            path="/v2/invoices",
            headers={
                "Rate-Limit-Limit": "60",
                "Rate-Limit-Remaining": "0",
                "Rate-Limit-Reset": str(reset_seconds),
            },
            body=json.dumps(
                {"error_code": "RATE_LIMIT_EXCEEDED", "message": "Rate limit exceeded"}
            ),
        )

    # -- the endpoint ------------------------------------------------------------------------

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return user in self.secret_keys and password == ""

    async def list_invoices(self, request: web.Request) -> web.Response:
        """Invoices newest first, filtered and paged as Xendit does."""
        if not self._authorized(request):
            return web.json_response(
                {"error_code": "INVALID_API_KEY", "message": "API key is invalid"}, status=401
            )
        query = request.query
        try:
            limit = int(query.get("limit", "10"))
            after = query.get("created_after")
            created_after = datetime.fromisoformat(after) if after else None
        except ValueError:
            return _validation_error("limit or created_after is invalid")
        if not 1 <= limit <= MAX_LIMIT:
            return _validation_error(f"limit must be between 1 and {MAX_LIMIT}")
        statuses = set(query.getall("statuses[]", []))
        rows = sorted(
            (row.data for row in self.rows.values()),
            key=lambda data: (data["created"], data["id"]),
            reverse=True,
        )
        rows = [
            data
            for data in rows
            if (not statuses or data["status"] in statuses)
            and (created_after is None or _created(data) >= created_after)
        ]
        if (last := query.get("last_invoice_id")) is not None:
            ids = [data["id"] for data in rows]
            if last not in ids:
                return _validation_error("last_invoice_id not found")
            rows = rows[ids.index(last) + 1 :]
        return web.Response(body=json_bytes(rows[:limit]), content_type="application/json")


def _created(data: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(data["created"]).astimezone(UTC)


def _validation_error(message: str) -> web.Response:
    return web.json_response({"error_code": "API_VALIDATION_ERROR", "message": message}, status=400)
