"""A fake Jurnal.id that verifies Mekari's HMAC signature (over the full path as received, any
gateway prefix included), Date skew and Digest on every call, keeps sales invoices by
`custom_id` (409 on a repeat), finds them by `transaction_no`, updates them by numeric id only,
and injects bare and monthly 429s (5xx and slow answers through `faults`)."""

from __future__ import annotations

import hmac
import re
from email.utils import parsedate_to_datetime
from typing import Any

from aiohttp import web
from sambung.plugin import loads, sign_base64
from sambung.testing.fake_vendor import FakeVendor

from .client import API, digest, signing_string
from .mapping import amount

# Mekari's allowed clock skew.
MAX_SKEW_SECONDS = 300
_AUTH = re.compile(r'(\w+)="([^"]*)"')


class FakeJurnal(FakeVendor):
    """Jurnal's sales-invoice endpoints behind Mekari's HMAC authentication."""

    def __init__(
        self,
        *,
        client_id: str = "fake-client",
        client_secret: str = "fake-secret",
        prefix: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        # Where the API sits below the host (a gateway's path): base_url is url + prefix.
        self.prefix = prefix.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.invoices: dict[str, dict[str, Any]] = {}
        self.rejected: list[str] = []
        self.created = 0
        self.updated = 0

    # -- faults ----------------------------------------------------------------------------

    def throttle(self, times: int = 1) -> None:
        """Answer the next calls with a bare 429: no body to speak of, no Retry-After."""
        self.faults.fail(429, times=times, body="")

    def exhaust_monthly_quota(self, times: int = 1000) -> None:
        """Answer the next calls as Jurnal does once the month's quota is used up."""
        self.faults.fail(429, times=times, body='{"error": "monthly limit exceeded"}')

    # -- authentication --------------------------------------------------------------------

    async def check(self, request: web.Request, body: bytes) -> str | None:
        """Why this request fails Mekari's HMAC authentication, or None when it passes."""
        fields = dict(_AUTH.findall(request.headers.get("Authorization", "")))
        if not request.headers.get("Authorization", "").startswith("hmac "):
            return "missing hmac authorization"
        if fields.get("username") != self.client_id:
            return "unknown username"
        if fields.get("algorithm") != "hmac-sha256" or fields.get("headers") != "date request-line":
            return "unsupported algorithm or headers"
        date = request.headers.get("Date", "")
        try:
            sent = parsedate_to_datetime(date)
        except (TypeError, ValueError):
            return "Date is not an HTTP date"
        if abs((self.clock.now() - sent).total_seconds()) > MAX_SKEW_SECONDS:
            return "Date is too far from now"
        expected = sign_base64(
            self.client_secret, signing_string(date, request.method, request.path_qs).encode()
        )
        if not hmac.compare_digest(expected.encode(), fields.get("signature", "").encode()):
            return "signature does not match"
        if body and not hmac.compare_digest(
            request.headers.get("Digest", "").encode(), digest(body).encode()
        ):
            return "Digest does not match the body"
        return None

    async def _authentic(self, request: web.Request) -> tuple[bytes, web.Response | None]:
        body = await request.read()
        problem = await self.check(request, body)
        if problem is not None:
            self.rejected.append(problem)
            return body, web.json_response({"message": f"HMAC signature: {problem}"}, status=401)
        return body, None

    # -- routes ----------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        """Create, find (by transaction number) and update (by id) sales invoices."""
        api = self.prefix + API
        app.router.add_post(f"{api}/sales_invoices", self._create)
        app.router.add_get(f"{api}/sales_invoices/{{number}}", self._find)
        app.router.add_patch(f"{api}/sales_invoices/{{id}}", self._update)

    @staticmethod
    def not_found(what: str) -> web.Response:
        """Jurnal's answer for a transaction it does not have: 422 (VENDORS.md)."""
        return web.json_response({"error_full_messages": [f"{what} tidak ditemukan"]}, status=422)

    async def _create(self, request: web.Request) -> web.Response:
        body, refused = await self._authentic(request)
        if refused is not None:
            return refused
        invoice = _invoice(body)
        if invoice is None:
            return web.json_response({"error_full_messages": ["not a sales_invoice"]}, status=422)
        custom_id = str(invoice.get("custom_id", ""))
        if custom_id in self.invoices:
            return web.json_response(
                {"error_full_messages": [f"custom_id {custom_id} has already been taken"]},
                status=409,
            )
        invoice["id"] = len(self.invoices) + 1
        self.invoices[custom_id] = invoice
        self.created += 1
        return web.json_response({"sales_invoice": invoice}, status=201)

    async def _find(self, request: web.Request) -> web.Response:
        _, refused = await self._authentic(request)
        if refused is not None:
            return refused
        number = request.match_info["number"]
        found = next((i for i in self.invoices.values() if i.get("transaction_no") == number), None)
        if found is None:
            return self.not_found(f"Transaksi {number}")
        return web.json_response({"sales_invoice": found})

    async def _update(self, request: web.Request) -> web.Response:
        body, refused = await self._authentic(request)
        if refused is not None:
            return refused
        wanted = request.match_info["id"]
        # Jurnal updates by its numeric id; a transaction number here finds nothing.
        found = next((i for i in self.invoices.values() if str(i.get("id")) == wanted), None)
        invoice = _invoice(body)
        if found is None or invoice is None:
            return self.not_found(f"Faktur {wanted}")
        found.update({k: v for k, v in invoice.items() if k != "id"})
        self.updated += 1
        return web.json_response({"sales_invoice": found})

    def total_of(self, custom_id: str) -> str:
        """Quantity x rate summed over one stored invoice's lines."""
        from decimal import Decimal

        lines = self.invoices[custom_id]["transaction_lines_attributes"]
        products = (Decimal(str(line["quantity"])) * Decimal(str(line["rate"])) for line in lines)
        return amount(sum(products, Decimal(0)))


def _invoice(body: bytes) -> dict[str, Any] | None:
    try:
        payload = loads(body)
    except ValueError:
        return None
    invoice = payload.get("sales_invoice") if isinstance(payload, dict) else None
    return dict(invoice) if isinstance(invoice, dict) else None
