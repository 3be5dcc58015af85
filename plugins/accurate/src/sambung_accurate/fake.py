"""A fake Accurate Online: API-token or OAuth checks, `api-token.do` host discovery,
db-list/open-db sessions, sales invoices kept by number (saved ones answered in `r`), `s: false`
business errors, session expiry, an expired API token, and Accurate's 8/s, 8-in-flight limit.

Like account.accurate.id, the fake's account host is also its OAuth authorization server
(core's `FakeAuthorizationServer`, HTTP Basic client auth): a call with `X-Api-Timestamp` is
checked as the API-token mode (the token, a `dd/MM/yyyy HH:mm:ss` WIB or ISO-8601 timestamp
within 5 minutes of the fake's clock, and base64 HMAC-SHA256 of that exact string under the
signature secret), any other needs a live Bearer token the fake issued and an open session.
The database host is the fake itself: `api-token.do` and `open-db.do` name its own URL."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from sambung.testing.oauth_server import FakeAuthorizationServer

from .client import api_signature, read_api_timestamp

DATA = "/accurate/api"
# Accurate's calls per second and in flight per account.
LIMIT = 8
# How far X-Api-Timestamp may be from the fake's clock, in seconds.
MAX_SKEW_SECONDS = 300


@dataclass
class Invoice:
    """One sales invoice as the fake keeps it."""

    id: int
    number: str
    fields: dict[str, str]
    saves: int = 1
    lines: list[dict[str, str]] = field(default_factory=list)


class FakeAccurate(FakeAuthorizationServer):
    """Accurate's account host (with its OAuth server) and one database host, in one local app.

    `items` and `customers`, when given, are the only codes Accurate knows: any other makes
    `save.do` answer `s: false` with Accurate's kind of message.
    """

    def __init__(
        self,
        *,
        api_token: str = "aat.fake-token",
        signature_secret: str = "fake-signature-secret",
        databases: dict[int, str] | None = None,
        items: set[str] | None = None,
        customers: set[str] | None = None,
        client_id: str = "accurate-client",
        client_secret: str = "accurate-client-secret",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            client_id=client_id, client_secret=client_secret, client_auth="basic", **kwargs
        )
        self.api_token = api_token
        self.signature_secret = signature_secret
        self.databases = databases if databases is not None else {101: "Kopi Senja"}
        self.items = items
        self.customers = customers
        self.sessions: set[str] = set()
        # The database an API token belongs to (the first one unless told).
        self.api_token_database = next(iter(self.databases), 0)
        self.api_token_expired = False
        # Why each refused API-token call was refused, in order.
        self.token_refusals: list[str] = []
        self.invoices: dict[str, Invoice] = {}
        self.saves = 0
        self.rate_limited = 0
        self._second: tuple[int, int] = (0, 0)

    # -- what tests look at ----------------------------------------------------------------

    def expire_sessions(self) -> None:
        """Every session opened so far stops working (Accurate closed them)."""
        self.sessions.clear()

    def expire_api_token(self) -> None:
        """The API token stops working (expired, or revoked in Accurate's settings)."""
        self.api_token_expired = True

    def total_of(self, number: str) -> Any:
        """The sum of quantity x unit price less discounts of one stored invoice."""
        from decimal import Decimal

        invoice = self.invoices[number]
        total = sum(
            (
                Decimal(line["unitPrice"]) * Decimal(line["quantity"])
                - Decimal(line.get("itemCashDiscount", "0"))
                for line in invoice.lines
            ),
            Decimal(0),
        )
        return total - Decimal(invoice.fields.get("cashDiscount", "0"))

    # -- checks ----------------------------------------------------------------------------

    @staticmethod
    def api_token_mode(request: web.Request) -> bool:
        """Whether a call is signed as the API-token mode (else it is OAuth)."""
        return "X-Api-Timestamp" in request.headers

    def _token_ok(self, request: web.Request) -> bool:
        if not self.api_token_mode(request):
            return self.bearer_ok(request)  # OAuth mode: a token from /oauth/token
        problem = self._api_token_problem(request)
        if problem is not None:
            self.token_refusals.append(problem)
        return problem is None

    def _api_token_problem(self, request: web.Request) -> str | None:
        """Why an API-token call is refused, or None."""
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        timestamp = request.headers.get("X-Api-Timestamp", "")
        signature = request.headers.get("X-Api-Signature", "")
        if not hmac.compare_digest(given.encode(), self.api_token.encode()):
            return "unknown API token"
        if self.api_token_expired:
            return "API token expired"
        sent = read_api_timestamp(timestamp)
        if sent is None:
            return "X-Api-Timestamp is neither dd/MM/yyyy HH:mm:ss nor ISO-8601"
        if abs((self.clock.now() - sent).total_seconds()) > MAX_SKEW_SECONDS:
            return "X-Api-Timestamp is too far from now"
        expected = api_signature(self.signature_secret, timestamp)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            return "X-Api-Signature does not match"
        return None

    def _over_limit(self) -> bool:
        """More than 8 calls in flight, or in this calendar second (of the fake's clock)."""
        second = int(self.monotonic())
        count = self._second[1] + 1 if self._second[0] == second else 1
        self._second = (second, count)
        return self.in_flight > LIMIT or count > LIMIT

    @staticmethod
    def refused(message: str) -> web.Response:
        """Accurate's business error: HTTP 200 with `s: false`."""
        return web.json_response({"s": False, "d": [message]})

    # -- routes ----------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        """OAuth, account endpoints and the database's sales-invoice endpoints."""
        super().routes(app)
        app.router.add_post("/api/api-token.do", self._api_token)
        app.router.add_get("/api/db-list.do", self._db_list)
        app.router.add_get("/api/open-db.do", self._open_db)
        app.router.add_get(f"{DATA}/sales-invoice/list.do", self._list)
        app.router.add_post(f"{DATA}/sales-invoice/save.do", self._save)

    async def _api_token(self, request: web.Request) -> web.Response:
        """The API token's own database and the host to call it on."""
        if not self.api_token_mode(request) or not self._token_ok(request):
            return self.unauthorized()
        database = self.api_token_database
        return web.json_response(
            {
                "s": True,
                "d": {
                    "user": {"id": 1, "name": "Pemilik Kopi Senja"},
                    "database": {
                        "id": database,
                        "alias": self.databases.get(database, ""),
                        "host": self.url,
                    },
                },
            }
        )

    async def _db_list(self, request: web.Request) -> web.Response:
        if not self._token_ok(request):
            return self.unauthorized()
        rows = [{"id": id, "alias": alias} for id, alias in self.databases.items()]
        return web.json_response({"s": True, "d": rows})

    async def _open_db(self, request: web.Request) -> web.Response:
        if not self._token_ok(request):
            return self.unauthorized()
        try:
            database = int(request.query.get("id", ""))
        except ValueError:
            return self.refused("Parameter id harus diisi")
        if database not in self.databases:
            return self.refused(f"Database {database} tidak ditemukan")
        session = secrets.token_hex(8)
        self.sessions.add(session)
        return web.json_response({"s": True, "host": self.url, "session": session})

    def _data_check(self, request: web.Request) -> web.Response | None:
        if self._over_limit():
            self.rate_limited += 1
            return web.json_response({"s": False, "d": ["Too many requests"]}, status=429)
        if not self._token_ok(request):
            return self.unauthorized()
        if self.api_token_mode(request):  # an API token needs no session
            return None
        if request.headers.get("X-Session-ID") not in self.sessions:
            return web.json_response({"s": False, "d": ["Session expired"]}, status=401)
        return None

    async def _list(self, request: web.Request) -> web.Response:
        problem = self._data_check(request)
        if problem is not None:
            return problem
        wanted = request.query.get("filter.number.val")
        rows = [
            {"id": invoice.id, "number": invoice.number}
            for invoice in self.invoices.values()
            if wanted is None or invoice.number == wanted
        ]
        return web.json_response({"s": True, "d": rows, "sp": {"rowCount": len(rows)}})

    async def _save(self, request: web.Request) -> web.Response:
        problem = self._data_check(request)
        if problem is not None:
            return problem
        form = {key: str(value) for key, value in (await request.post()).items()}
        number = form.get("number", "")
        customer = form.get("customerNo", "")
        if not number or not customer or "transDate" not in form:
            return self.refused("Nomor, Pelanggan dan Tanggal harus diisi")
        if self.customers is not None and customer not in self.customers:
            return self.refused(f"Pelanggan dengan nomor {customer} tidak ditemukan")
        lines = _lines(form)
        if not lines:
            return self.refused("Rincian barang harus diisi")
        for line in lines:
            if self.items is not None and line.get("itemNo") not in self.items:
                return self.refused(f"Barang dengan nomor {line.get('itemNo')} tidak ditemukan")
        existing = self.invoices.get(number)
        if "id" in form:
            if existing is None or str(existing.id) != form["id"]:
                return self.refused(f"Faktur Penjualan dengan id {form['id']} tidak ditemukan")
            existing.fields, existing.lines = form, lines
            existing.saves += 1
            invoice = existing
        elif existing is not None:
            return self.refused(f"Nomor Faktur {number} sudah digunakan")
        else:
            invoice = Invoice(len(self.invoices) + 1, number, form, lines=lines)
            self.invoices[number] = invoice
        self.saves += 1
        return web.json_response(
            {
                "s": True,
                "d": [f"Faktur Penjualan {number} berhasil disimpan"],
                "r": {"id": invoice.id, "number": number},
            }
        )


def _lines(form: dict[str, str]) -> list[dict[str, str]]:
    """`detailItem[i].field` form keys → one dict per line, in index order."""
    lines: dict[int, dict[str, str]] = {}
    for key, value in form.items():
        if key.startswith("detailItem["):
            index, _, name = key.removeprefix("detailItem[").partition("].")
            lines.setdefault(int(index), {})[name] = value
    return [lines[i] for i in sorted(lines)]
