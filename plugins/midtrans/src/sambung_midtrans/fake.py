"""A fake Midtrans: signed HTTP notifications for the simulator and tests, and the Get Status
endpoint (`GET /v2/{order_id}/status`, HTTP Basic with the server key) that gap healing calls.

The status endpoint answers the orders the fake holds (`orders`, keyed by order id) with the
same fields a notification carries (Midtrans's Get Status shape: `status_code`,
`status_message`, `transaction_id`, `order_id`, `gross_amount`, `payment_type`,
`transaction_time`, `transaction_status`, `fraud_status`, `signature_key`, channel extras),
an unknown order with 404 `{"status_code": "404", "status_message": "Transaction doesn't
exist."}` (as HTTP 404, or inside an HTTP 200 with `not_found_in_body`), a wrong server key with
401, and injected faults (`faults.fail(429)`, `faults.fail(503)`, `faults.slow(...)`).
"""

from __future__ import annotations

import base64
import hmac
import uuid
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from sambung.testing.fake_vendor import FakeVendor
from sambung.testing.fakes import basket, json_bytes

from .mapping import MIDTRANS_ZONE, signature

# (payment_type, extras) per channel, as Midtrans notifications carry them.
CHANNELS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("qris", {"issuer": "gopay", "acquirer": "gopay", "transaction_type": "on-us"}),
    ("bank_transfer", {"va_numbers": [{"bank": "bca", "va_number": "12345678901"}]}),
    ("credit_card", {"bank": "bni", "masked_card": "48111111-1114", "eci": "05"}),
    ("gopay", {}),
    ("echannel", {"bill_key": "000123456789", "biller_code": "70012"}),
)


def notification(
    sequence: int,
    at: datetime,
    status: str,
    server_key: str,
    *,
    outlet: str = "kemang",
    fraud_status: str = "accept",
    order_id: str | None = None,
) -> dict[str, Any]:
    """A signed notification for basket `sequence`'s order in `status`, created at `at`
    (order id `<outlet>-mt-<sequence>` unless given)."""
    sale = basket(sequence)
    payment_type, extras = CHANNELS[sequence % len(CHANNELS)]
    order_id = order_id or demo_order_id(outlet, sequence)
    gross = f"{sale.total:.2f}"
    status_code = {"pending": "201", "deny": "202", "expire": "407"}.get(status, "200")
    local = at.astimezone(MIDTRANS_ZONE).strftime("%Y-%m-%d %H:%M:%S")
    body: dict[str, Any] = {
        "transaction_time": local,
        "transaction_status": status,
        "transaction_id": f"9aed5972-5b6a-401e-894b-{sequence:012d}",
        "status_message": "midtrans payment notification",
        "status_code": status_code,
        "signature_key": signature(order_id, status_code, gross, server_key),
        "payment_type": payment_type,
        "order_id": order_id,
        "merchant_id": "G141532850",
        "gross_amount": gross,
        "fraud_status": fraud_status,
        "currency": "IDR",
        **extras,
    }
    if status == "settlement":
        body["settlement_time"] = local
    return body


def notification_bytes(*args: Any, **kw: Any) -> bytes:
    """`notification` serialised as Midtrans posts it."""
    return json_bytes(notification(*args, **kw))


def demo_order_id(outlet: str, sequence: int) -> str:
    """The order id the fake gives basket `sequence` at `outlet`."""
    return f"{outlet}-mt-{sequence:06d}"


def not_found(order_id: str) -> dict[str, Any]:
    """Midtrans's answer for an order id it has no transaction for."""
    return {
        "status_code": "404",
        "status_message": "Transaction doesn't exist.",
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, order_id)),
    }


# The demo's Midtrans, per outlet: what the simulated notifications said each order became,
# shared in this process with the fake that `sambung run --simulate` serves, so an order whose
# settlement notification the demo "loses" is found settled by the poll.
_DEMO_LEDGERS: dict[str, dict[str, dict[str, Any]]] = {}
# How many orders a demo ledger keeps (the oldest go first).
DEMO_LEDGER_SIZE = 5000


def demo_ledger(outlet: str) -> dict[str, dict[str, Any]]:
    """The demo's Midtrans orders at `outlet` (order id → its status answer)."""
    return _DEMO_LEDGERS.setdefault(outlet, {})


def remember(ledger: dict[str, dict[str, Any]], body: dict[str, Any]) -> None:
    """Keep `body` as its order's latest status in a bounded ledger."""
    ledger.pop(body["order_id"], None)
    ledger[body["order_id"]] = body
    while len(ledger) > DEMO_LEDGER_SIZE:
        ledger.pop(next(iter(ledger)))


class MidtransFake(FakeVendor):
    """Midtrans's Get Status for the orders it holds, behind HTTP Basic with the server key."""

    def __init__(
        self,
        *,
        server_key: str = "SB-Mid-server-fake",
        orders: dict[str, dict[str, Any]] | None = None,
        outlet: str = "kemang",
        not_found_in_body: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.server_key = server_key
        self.outlet = outlet
        self.orders: dict[str, dict[str, Any]] = orders if orders is not None else {}
        self.not_found_in_body = not_found_in_body
        # Every order id asked about, in order (a test checks what the poll asked).
        self.asked: list[str] = []

    # -- what tests set up -----------------------------------------------------------------

    def order(
        self,
        sequence: int,
        at: datetime,
        status: str,
        *,
        order_id: str | None = None,
        fraud_status: str = "accept",
    ) -> dict[str, Any]:
        """Hold basket `sequence`'s order created at `at`, now in `status`; returns its body."""
        body = notification(
            sequence,
            at,
            status,
            self.server_key,
            outlet=self.outlet,
            fraud_status=fraud_status,
            order_id=order_id,
        )
        body["status_message"] = "Success, transaction is found"
        remember(self.orders, body)
        return body

    def move(self, order_id: str, status: str, **extra: Any) -> dict[str, Any]:
        """The held order goes on to `status` (a settlement, a refund), re-signed."""
        body = {**self.orders[order_id], "transaction_status": status, **extra}
        code = {"pending": "201", "deny": "202", "expire": "407"}.get(status, "200")
        body["status_code"] = code
        body["signature_key"] = signature(order_id, code, body["gross_amount"], self.server_key)
        if status == "settlement" and "settlement_time" not in body:
            body["settlement_time"] = body["transaction_time"]
        remember(self.orders, body)
        return body

    def seed(self, count: int, start: datetime) -> list[dict[str, Any]]:
        """`count` orders settled at Midtrans, a minute apart from `start`; their pending
        versions, as their first notifications said (for the store to know them by)."""
        pending = []
        for sequence in range(1, count + 1):
            at = start + timedelta(minutes=sequence)
            pending.append(self.order(sequence, at, "pending"))
            self.move(pending[-1]["order_id"], "settlement")
        return pending

    def sale(self, sequence: int, at: datetime) -> None:
        """Nothing: Midtrans rings up no sales; the demo's orders come from its notifications."""

    # -- the endpoint ----------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        """Get Status by order id (or transaction id, as Midtrans also accepts)."""
        app.router.add_get("/v2/{order_id}/status", self._status)

    def _authorized(self, request: web.Request) -> bool:
        expected = "Basic " + base64.b64encode(f"{self.server_key}:".encode()).decode()
        given = request.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), expected.encode())

    async def _status(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            body = {
                "status_code": "401",
                "status_message": "Unknown Merchant server_key/id",
                "id": str(uuid.uuid4()),
            }
            return web.json_response(body, status=401)
        wanted = request.match_info["order_id"]
        self.asked.append(wanted)
        found = self.orders.get(wanted) or next(
            (o for o in self.orders.values() if o.get("transaction_id") == wanted), None
        )
        if found is None:
            return web.json_response(
                not_found(wanted), status=200 if self.not_found_in_body else 404
            )
        return web.Response(body=json_bytes(found), content_type="application/json")
