"""The only code that calls Midtrans: `GET /v2/{order_id}/status` with HTTP Basic (server key,
empty password), per VENDORS.md and Midtrans's Get Status docs.

Midtrans answers a known order with the same fields as its notification (`transaction_status,
status_code, gross_amount, transaction_time, fraud_status, payment_type`, channel extras…). An
order it does not know answers 404 (`{"status_code": "404", "status_message": "Transaction
doesn't exist."}`, as HTTP 404 or, from some hosts, inside an HTTP 200): that order is simply
not at Midtrans (paid another way, or never created), not a failure. The body's `status_code`
is read as well as the HTTP one: 401 is a refused server key, 429 and 5xx are passing.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

from pydantic import SecretStr
from sambung.plugin import (
    AuthError,
    RequestRejected,
    RetriableError,
    VendorHttp,
    decode,
    shorten,
)

# Body `status_code`s that describe a transaction (201 pending, 202 denied, 407 expired).
TRANSACTION_CODES = frozenset({"200", "201", "202", "407"})


def basic_auth(server_key: SecretStr) -> str:
    """HTTP Basic with the server key as user name and an empty password, as Midtrans wants."""
    pair = f"{server_key.get_secret_value()}:".encode()
    return "Basic " + base64.b64encode(pair).decode()


def status_path(order_id: str) -> str:
    """The Get Status path of an order; any character outside a URL segment is escaped (an
    order id may hold `#` or `/`)."""
    return f"/v2/{quote(order_id, safe='')}/status"


def status_answer(order_id: str, body: Any) -> dict[str, Any] | None:
    """The transaction in a Get Status answer, None when Midtrans does not know the order, or
    the core error its `status_code` means."""
    if not isinstance(body, dict):
        raise RetriableError(f"Midtrans answered {order_id} with something not a JSON object")
    code = str(body.get("status_code") or "")
    message = shorten(str(body.get("status_message") or ""), 200)  # masked before it is cut
    if code == "404":
        return None
    if code == "401":
        raise AuthError(f"Midtrans refused the server key: {message}")
    if code == "429" or code.startswith("5"):
        raise RetriableError(f"Midtrans status of {order_id}: {code} {message}")
    if code not in TRANSACTION_CODES or "transaction_status" not in body:
        raise RequestRejected(f"Midtrans status of {order_id}: {code} {message}", status=None)
    return body


class MidtransClient:
    """Midtrans's Get Status through core's HTTP client (its budget, timeout and clock)."""

    def __init__(self, http: VendorHttp, base_url: str, server_key: SecretStr) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.server_key = server_key

    async def status(self, order_id: str) -> dict[str, Any] | None:
        """The order's transaction as Midtrans knows it now, or None if it knows no such order."""
        response = await self.http.send(
            "GET",
            self.base_url + status_path(order_id),
            headers={"Authorization": basic_auth(self.server_key), "Accept": "application/json"},
        )
        if response.status == 404:
            return None
        self.http.check(response)  # 401 → AuthError; 408, 429, 5xx → RetriableError
        body = decode(response, dict[str, Any], what=f"Midtrans status of {order_id}")
        return status_answer(order_id, body)
