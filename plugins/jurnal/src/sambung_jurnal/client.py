"""Jurnal.id (Mekari) over HTTP: Mekari's HMAC request signing and sales invoices.

Signing (Mekari's HMAC scheme): a `Date` header (RFC 7231, GMT), the string
`date: <Date>\n<METHOD> <path?query> HTTP/1.1` signed with HMAC-SHA256 under the client secret,
base64, in `Authorization: hmac username="<client id>", algorithm="hmac-sha256",
headers="date request-line", signature="<base64>"`; a body adds `Digest: SHA-256=<base64>`.
Mekari allows 300 s of clock skew. The request line is the full path as sent: a `base_url` with
a path prefix (a gateway in front of Mekari) is signed with that prefix.

Updating follows the working integration (VENDORS.md): `GET /sales_invoices/<transaction_no>`
for the invoice's numeric `id`, then `PATCH /sales_invoices/<id>`; an invoice not found there is
created instead.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

from pydantic import SecretStr
from sambung.plugin import (
    DeliveryRejected,
    RequestRejected,
    RetriableError,
    SinkPaused,
    VendorHttp,
    VendorResponse,
    decode,
    sign_base64,
    vendor_message,
)

API = "/public/jurnal/api/v1"
# What Jurnal answers a look-up of a transaction number it does not have.
NOT_FOUND = (404, 422)
# Mekari's quota month, as its Indonesian customers count it.
QUOTA_ZONE = ZoneInfo("Asia/Jakarta")


def http_date(instant: datetime) -> str:
    """`Date` as RFC 7231 wants it: `Fri, 27 Nov 2026 01:02:03 GMT`."""
    return format_datetime(instant.astimezone(UTC), usegmt=True)


def digest(body: bytes) -> str:
    """The `Digest` header of a body: `SHA-256=` and base64 of its SHA-256."""
    return "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode()


def signing_string(date: str, method: str, path: str) -> str:
    """What Mekari signs: the date line and the request line (path with its query)."""
    return f"date: {date}\n{method.upper()} {path} HTTP/1.1"


def mekari_headers(
    client_id: str, client_secret: str, method: str, path: str, body: bytes | None, now: datetime
) -> dict[str, str]:
    """The `Date`, `Authorization` (and for a body `Digest`) headers of one signed request."""
    date = http_date(now)
    signature = sign_base64(client_secret, signing_string(date, method, path).encode())
    headers = {
        "Date": date,
        "Authorization": (
            f'hmac username="{client_id}", algorithm="hmac-sha256", '
            f'headers="date request-line", signature="{signature}"'
        ),
    }
    if body is not None:
        headers["Digest"] = digest(body)
    return headers


def next_month(now: datetime) -> datetime:
    """The first instant of the next quota month (in Jakarta), when a used-up quota renews."""
    local = now.astimezone(QUOTA_ZONE)
    first = (local.replace(day=1) + timedelta(days=32)).replace(
        day=1, hour=0, minute=0, second=0, microsecond=0
    )
    return first


def invoice_id(payload: Any) -> int | None:
    """The numeric `sales_invoice.id` of a Jurnal answer, or None when it carries none."""
    invoice = payload.get("sales_invoice") if isinstance(payload, dict) else None
    raw = invoice.get("id") if isinstance(invoice, dict) else None
    if isinstance(raw, bool) or raw is None:
        return None
    try:
        return int(str(raw))
    except ValueError:
        return None


class JurnalClient:
    """Sales invoices at one Jurnal company, every call signed."""

    def __init__(
        self,
        http: VendorHttp,
        *,
        base_url: str,
        client_id: str,
        client_secret: SecretStr,
        throttle_seconds: float = 60.0,
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        # The path part of base_url: part of the request line Mekari's signature covers.
        self.prefix = urlsplit(self.base_url).path.rstrip("/")
        self.client_id = client_id
        self._secret = client_secret
        self.throttle_seconds = throttle_seconds

    async def _send(self, method: str, path: str, body: bytes | None) -> VendorResponse:
        headers = mekari_headers(
            self.client_id,
            self._secret.get_secret_value(),
            method,
            self.prefix + path,
            body,
            self.http.clock.now(),
        )
        if body is not None:
            headers["Content-Type"] = "application/json"
        # Statuses are read here, not by VendorHttp.check: 409 and the two 429s mean more.
        return await self.http.send(method, self.base_url + path, data=body, headers=headers)

    async def create_invoice(self, body: bytes) -> bool:
        """POST a sales invoice; False when its `custom_id` was already used (409)."""
        answer = await self._send("POST", f"{API}/sales_invoices", body)
        if answer.status == 409:
            return False
        self._check(answer)
        return True

    async def find_invoice(self, transaction_no: str) -> int | None:
        """The numeric id of the sales invoice with this transaction number, if Jurnal has one."""
        answer = await self._send("GET", f"{API}/sales_invoices/{quote(transaction_no)}", None)
        if answer.status in NOT_FOUND:
            return None
        self._check(answer)
        found = invoice_id(decode(answer, object, what=f"Jurnal invoice {transaction_no}"))
        if found is None:
            raise RetriableError(f"Jurnal's answer for {transaction_no} has no sales_invoice.id")
        return found

    async def update_invoice(self, invoice: int, body: bytes) -> None:
        """PATCH the sales invoice with this numeric id to `body`'s content."""
        self._check(await self._send("PATCH", f"{API}/sales_invoices/{invoice}", body))

    def _check(self, answer: VendorResponse) -> None:
        status = answer.status
        if status < 300:
            return
        message = f"HTTP {status}: {vendor_message(answer.body)}"
        if status == 429 and b"monthly limit" in answer.body.lower():
            until = next_month(self.http.clock.now())
            raise SinkPaused(f"Jurnal's monthly API limit is used up ({message})", until=until)
        if status == 429:
            # Jurnal throttles (about 100 calls a minute) without saying for how long.
            raise RetriableError(message, retry_after=self.throttle_seconds)
        try:
            self.http.check(answer)  # timeouts, 5xx → RetriableError; 401 → AuthError
        except RequestRejected as err:  # another 4xx: this invoice will not go as it is
            raise DeliveryRejected(f"Jurnal refused the invoice: {message}", status=status) from err
