"""Accurate Online over HTTP: authentication, the database host, and invoices.

Authentication is pluggable (`AccurateAuth`): the API-token mode signs every call; the OAuth
mode sends the access token core's credential store holds for the sink (refreshed once however
many deliveries ask, a rotated refresh token stored first).

Where data calls go depends on the mode (VENDORS.md). An API token belongs to one database:
`POST {account}/api/api-token.do` names it and its `host`, and data calls go there with no
session. With OAuth, `open-db.do` answers the `host` and a session (`X-Session-ID`). When the
database host refuses a call (HTTP 401), the host (and session) is found again once and the
call retried. When the account host refuses the access token itself, the OAuth token is
refreshed once and the call retried.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo

from pydantic import SecretStr
from sambung.plugin import (
    AuthError,
    Clock,
    Credentials,
    DeliveryRejected,
    RetriableError,
    SinkDisconnected,
    Token,
    VendorHttp,
    VendorResponse,
    decode,
    sign_base64,
)


class AccurateAuth(Protocol):
    """Headers that authenticate one call to Accurate.

    Async so that an OAuth implementation can fetch or refresh its token (single-flight, from
    core's credential store) before answering.
    """

    async def headers(self) -> dict[str, str]:
        """The authentication headers for a call made now."""
        ...

    async def refused(self, headers: dict[str, str]) -> bool:
        """Accurate answered 401 to a call made with `headers`: whether trying again with new
        headers may help (an OAuth token can be refreshed; a signed API token cannot)."""
        ...


# How `X-Api-Timestamp` is written: `dd/MM/yyyy HH:mm:ss` local time, as four working
# integrations send it, or ISO-8601 with its offset, as one does (VENDORS.md).
TimestampFormat = Literal["dd/MM/yyyy HH:mm:ss", "iso8601"]
# The zone the local form is read in: WIB, Accurate's own.
ACCURATE_ZONE = ZoneInfo("Asia/Jakarta")


def api_timestamp(
    now: datetime,
    style: TimestampFormat = "dd/MM/yyyy HH:mm:ss",
    zone: ZoneInfo = ACCURATE_ZONE,
) -> str:
    """`X-Api-Timestamp` for the instant `now`, in `style`, on the clock of `zone`."""
    local = now.astimezone(zone)
    if style == "iso8601":
        return local.isoformat(timespec="seconds")
    return f"{local:%d/%m/%Y %H:%M:%S}"


def read_api_timestamp(value: str, zone: ZoneInfo = ACCURATE_ZONE) -> datetime | None:
    """The instant an `X-Api-Timestamp` names (either style), or None if it is neither."""
    try:
        parsed = datetime.strptime(value, "%d/%m/%Y %H:%M:%S")
    except ValueError:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


def api_signature(secret: str, timestamp: str) -> str:
    """`X-Api-Signature`: base64 of HMAC-SHA256 of the timestamp under the signature secret."""
    return sign_base64(secret, timestamp.encode())


class ApiTokenAuth:
    """Accurate's API-token mode: a bearer `aat…` token and a signed timestamp on every call."""

    def __init__(
        self,
        token: SecretStr,
        signature_secret: SecretStr,
        clock: Clock,
        *,
        style: TimestampFormat = "dd/MM/yyyy HH:mm:ss",
        zone: ZoneInfo = ACCURATE_ZONE,
    ) -> None:
        self._token = token
        self._secret = signature_secret
        self._clock = clock
        self._style: TimestampFormat = style
        self._zone = zone

    async def headers(self) -> dict[str, str]:
        """Bearer token, timestamp and its signature."""
        timestamp = api_timestamp(self._clock.now(), self._style, self._zone)
        return {
            "Authorization": f"Bearer {self._token.get_secret_value()}",
            "X-Api-Timestamp": timestamp,
            "X-Api-Signature": api_signature(self._secret.get_secret_value(), timestamp),
        }

    async def refused(self, headers: dict[str, str]) -> bool:
        """The API token and its secret are fixed: a refusal stays a refusal."""
        return False


# After the refresh token was refused, try again this often (another replica, or a connect
# flow, may have stored new tokens meanwhile); a finished connect flow resumes the sink at once.
RECONNECT_RETRY = timedelta(minutes=5)


class OAuthAuth:
    """Accurate's OAuth mode: the sink's stored access token as a Bearer.

    Tokens come from core's credentials (`Credentials`), so eight deliveries finding
    the token expired cause one refresh, under the store's lease when replicas share a store.
    Credentials missing or refused for good (`invalid_grant`) raise `SinkDisconnected`: the sink
    holds its rows until it is connected again with `sambung connect --sink NAME`.
    """

    def __init__(self, credentials: Credentials, clock: Clock) -> None:
        self._credentials = credentials
        self._clock = clock
        self._current: Token | None = None

    async def headers(self) -> dict[str, str]:
        """`Authorization: Bearer <access token>`, refreshed first when due."""
        credentials = self._credentials
        try:
            token = await credentials.token()
        except AuthError as err:
            raise SinkDisconnected(
                f"Accurate needs connecting ({err}); rows wait in the outbox until you run"
                f" `{credentials.reconnect}` and open the link it prints",
                until=self._clock.now() + RECONNECT_RETRY,
            ) from err
        self._current = token
        return {"Authorization": f"Bearer {token.access_token.get_secret_value()}"}

    async def refused(self, headers: dict[str, str]) -> bool:
        """The token in `headers` was refused: the next `headers()` refreshes, once for all."""
        current = self._current
        if current is not None and headers.get("Authorization") == (
            f"Bearer {current.access_token.get_secret_value()}"
        ):
            await self._credentials.invalidate(current)
        return True


class AccurateRefused(DeliveryRejected):
    """Accurate answered `s: false`: a business error, with Accurate's own message."""


def _answer(response: VendorResponse, what: str) -> Any:
    """The `d` of an `{s, d}` answer, or `AccurateRefused` carrying Accurate's message."""
    payload = decode(response, dict[str, Any], what=f"Accurate {what}")
    if payload.get("s") is False:
        raise AccurateRefused(f"Accurate refused {what}: {_words(payload.get('d'))}")
    return payload


def _words(d: Any) -> str:
    """Accurate's message: `d` is a string or a list of strings."""
    if isinstance(d, list):
        return "; ".join(str(part) for part in d) or "(no message)"
    return str(d) if d else "(no message)"


@dataclass(frozen=True)
class Database:
    """Where data calls go: the database's host, and its session when one was opened."""

    host: str
    session: str | None = None
    id: int | None = None

    def headers(self) -> dict[str, str]:
        """`X-Session-ID` when the database was opened with a session (OAuth mode)."""
        return {"X-Session-ID": self.session} if self.session is not None else {}


@dataclass(frozen=True)
class SavedInvoice:
    """What `save.do` answers in `r`: the saved invoice's id and number."""

    id: int
    number: str


def api_token_database(payload: Any) -> Database:
    """`api-token.do`'s `d.database` → its host (and id); `AuthError` if it names none."""
    d = payload.get("d") if isinstance(payload, dict) else None
    database = d.get("database") if isinstance(d, dict) else None
    if not isinstance(database, dict):
        database = {}
    host = database.get("host")
    if not isinstance(host, str) or not host.strip():
        raise AuthError("Accurate's api-token.do named no database host for this API token")
    host = host.strip()
    if "://" not in host:  # a bare host name (zeus.accurate.id): Accurate serves HTTPS only
        host = f"https://{host}"
    raw_id = database.get("id")
    try:
        database_id = int(raw_id) if raw_id is not None else None
    except (TypeError, ValueError):
        database_id = None
    return Database(host=host.rstrip("/"), id=database_id)


def saved_invoice(payload: Any, number: str) -> SavedInvoice:
    """The invoice in a `save.do` answer's `r`; a success without one is not trusted."""
    r = payload.get("r") if isinstance(payload, dict) else None
    if not isinstance(r, dict):
        r = {}
    try:
        invoice_id = int(r.get("id"))  # type: ignore[arg-type]  # checked by the except
    except (TypeError, ValueError) as err:
        said = _words(payload.get("d") if isinstance(payload, dict) else None)
        raise RetriableError(f"Accurate's answer to invoice {number} has no r.id: {said}") from err
    return SavedInvoice(invoice_id, str(r.get("number") or number))


class AccurateClient:
    """One Accurate database: finding its host, invoice look-ups and saves.

    `api_token=True` finds the host with `api-token.do` (no session); otherwise the host and a
    session come from `open-db.do` (the database from `database_id`, or the account's only one).
    """

    def __init__(
        self,
        http: VendorHttp,
        auth: AccurateAuth,
        *,
        account_url: str = "https://account.accurate.id",
        database_id: int | None = None,
        api_token: bool = False,
    ) -> None:
        self.http = http
        self.auth = auth
        self.account_url = account_url.rstrip("/")
        self.database_id = database_id
        self.api_token = api_token
        self._database: Database | None = None
        # One look-up at a time: eight deliveries finding the session gone open it once.
        self._opening = asyncio.Lock()
        self.sessions_opened = 0

    async def database(self, stale: Database | None = None) -> Database:
        """The database's host (and session), found now unless one other than `stale` is known."""
        async with self._opening:
            known = self._database
            if known is not None and known is not stale:
                return known
            found = await (self._discover() if self.api_token else self._open_db())
            self._database = found
            self.sessions_opened += 1
            return found

    async def _discover(self) -> Database:
        """API-token mode: the token's own database, from `api-token.do`."""
        response = await self._account("POST", "api-token.do")
        try:
            payload = _answer(response, "api-token")
        except AccurateRefused as err:  # the token itself was refused, not an invoice
            raise AuthError(str(err)) from err
        found = api_token_database(payload)
        if self.database_id is not None and found.id not in (None, self.database_id):
            raise AuthError(
                f"this API token belongs to Accurate database {found.id}, not database_id "
                f"{self.database_id}: fix `database_id:` or the token"
            )
        return found

    async def _open_db(self) -> Database:
        """OAuth mode: `open-db.do` of the configured (or only) database."""
        database = self.database_id
        if database is None:
            listed = _answer(await self._account("GET", "db-list.do"), "db-list")
            found = listed.get("d") or []
            if len(found) != 1:
                ids = ", ".join(str(db.get("id")) for db in found) or "none"
                raise AuthError(
                    f"this Accurate account has {len(found)} databases ({ids}): set "
                    "`database_id:` in the sink's settings"
                )
            database = int(found[0]["id"])
        opened = _answer(await self._account("GET", "open-db.do", id=str(database)), "open-db")
        return Database(
            host=str(opened["host"]).rstrip("/"), session=str(opened["session"]), id=database
        )

    async def _account(self, method: str, path: str, **params: str) -> VendorResponse:
        """A call to the account host; a refused OAuth token is refreshed and the call retried
        once (the database host's 401s mean a closed session, handled by `_call`)."""
        for attempt in (1, 2):
            headers = await self.auth.headers()
            try:
                return await self.http.request(
                    method,
                    f"{self.account_url}/api/{path}",
                    params=params or None,
                    headers=headers,
                )
            except AuthError:
                if attempt == 2 or not await self.auth.refused(headers):
                    raise
        raise AssertionError("unreachable")

    async def _call(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        """One data call; a refused call finds the host (and session) again once and retries."""
        database = await self.database()
        for attempt in (1, 2):
            headers = {**(await self.auth.headers()), **database.headers()}
            try:
                response = await self.http.request(
                    method, f"{database.host}/accurate/api/{path}", headers=headers, **kwargs
                )
            except AuthError:
                if attempt == 2:
                    raise
                database = await self.database(stale=database)
                continue
            return _answer(response, what)
        raise AssertionError("unreachable")

    async def find_invoice(self, number: str) -> int | None:
        """The id of the sales invoice with this number, if Accurate has one."""
        found = await self._call(
            "GET",
            "sales-invoice/list.do",
            f"the look-up of invoice {number}",
            params={
                "fields": "id,number",
                "filter.number.op": "EQUAL",
                "filter.number.val": number,
                "sp.pageSize": "1",
            },
        )
        for row in found.get("d") or []:
            if row.get("number") == number:
                return int(row["id"])
        return None

    async def save_invoice(self, number: str, form: list[tuple[str, str]]) -> SavedInvoice:
        """Save (create, or update when `form` names an `id`) a sales invoice: what `r` says."""
        saved = await self._call("POST", "sales-invoice/save.do", f"invoice {number}", data=form)
        return saved_invoice(saved, number)
