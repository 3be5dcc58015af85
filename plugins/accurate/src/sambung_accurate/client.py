"""Accurate Online over HTTP: authentication, the database session, and invoices.

Authentication is pluggable (`AccurateAuth`): the API-token mode signs every call; the OAuth
mode sends the access token core's credential store holds for the sink (refreshed once however
many deliveries ask, a rotated refresh token stored first). Every data call goes to the
database's `host` with the session from `open-db.do`; when Accurate refuses a session (HTTP 401
on a data call) it is opened again once and the call retried. When the account host refuses the
access token itself, the token is refreshed once and the call retried.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any, Protocol

from pydantic import SecretStr
from sambung.clock import Clock
from sambung.credentials import ConnectionCredentials
from sambung.errors import AuthError, DeliveryRejected, RetriableError, SinkDisconnected
from sambung.http import VendorHttp, VendorResponse
from sambung.signing import sign_base64
from sambung.tokens import Token


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


def api_timestamp(now: datetime) -> str:
    """`X-Api-Timestamp`: Unix time in milliseconds (no time zone to get wrong)."""
    return str(int(now.timestamp() * 1000))


def api_signature(secret: str, timestamp: str) -> str:
    """`X-Api-Signature`: base64 of HMAC-SHA256 of the timestamp under the signature secret."""
    return sign_base64(secret, timestamp.encode())


class ApiTokenAuth:
    """Accurate's API-token mode: a bearer `aat…` token and a signed timestamp on every call."""

    def __init__(self, token: SecretStr, signature_secret: SecretStr, clock: Clock) -> None:
        self._token = token
        self._secret = signature_secret
        self._clock = clock

    async def headers(self) -> dict[str, str]:
        """Bearer token, timestamp and its signature."""
        timestamp = api_timestamp(self._clock.now())
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

    Tokens come from core's credentials (`ConnectionCredentials`), so eight deliveries finding
    the token expired cause one refresh, under the store's lease when replicas share a store.
    Credentials missing or refused for good (`invalid_grant`) raise `SinkDisconnected`: the sink
    holds its rows until it is connected again with `sambung connect --sink NAME`.
    """

    def __init__(self, credentials: ConnectionCredentials) -> None:
        self._credentials = credentials
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
                until=credentials.service.clock.now() + RECONNECT_RETRY,
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
    try:
        payload = response.json()
    except ValueError as err:
        raise RetriableError(f"Accurate {what}: the answer is not JSON") from err
    if not isinstance(payload, dict):
        raise RetriableError(f"Accurate {what}: unexpected answer")
    if payload.get("s") is False:
        raise AccurateRefused(f"Accurate refused {what}: {_words(payload.get('d'))}")
    return payload


def _words(d: Any) -> str:
    """Accurate's message: `d` is a string or a list of strings."""
    if isinstance(d, list):
        return "; ".join(str(part) for part in d) or "(no message)"
    return str(d) if d else "(no message)"


class AccurateClient:
    """One Accurate database: its session, invoice look-ups and saves."""

    def __init__(
        self,
        http: VendorHttp,
        auth: AccurateAuth,
        *,
        account_url: str = "https://account.accurate.id",
        database_id: int | None = None,
    ) -> None:
        self.http = http
        self.auth = auth
        self.account_url = account_url.rstrip("/")
        self.database_id = database_id
        self._host: str | None = None
        self._session: str | None = None
        # One open-db at a time: eight deliveries finding the session gone open it once.
        self._opening = asyncio.Lock()
        self.sessions_opened = 0

    async def open_db(self, stale: str | None = None) -> tuple[str, str]:
        """The database's host and session, opened now unless one newer than `stale` exists."""
        async with self._opening:
            if self._host is not None and self._session is not None and self._session != stale:
                return self._host, self._session
            database = self.database_id
            if database is None:
                listed = _answer(await self._account("db-list.do"), "db-list")
                found = listed.get("d") or []
                if len(found) != 1:
                    ids = ", ".join(str(db.get("id")) for db in found) or "none"
                    raise AuthError(
                        f"this Accurate account has {len(found)} databases ({ids}): set "
                        "`database_id:` in the sink's settings"
                    )
                database = int(found[0]["id"])
            opened = _answer(await self._account("open-db.do", id=str(database)), "open-db")
            self._host = str(opened["host"]).rstrip("/")
            self._session = str(opened["session"])
            self.sessions_opened += 1
            return self._host, self._session

    async def _account(self, path: str, **params: str) -> VendorResponse:
        """A GET on the account host; a refused OAuth token is refreshed and the call retried
        once (the database host's 401s mean a closed session, handled by `_call`)."""
        for attempt in (1, 2):
            headers = await self.auth.headers()
            try:
                return await self.http.get(
                    f"{self.account_url}/api/{path}", params=params or None, headers=headers
                )
            except AuthError:
                if attempt == 2 or not await self.auth.refused(headers):
                    raise
        raise AssertionError("unreachable")

    async def _call(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        """One data call; a refused session is opened again once and the call retried."""
        host, session = await self.open_db()
        for attempt in (1, 2):
            headers = {**(await self.auth.headers()), "X-Session-ID": session}
            try:
                response = await self.http.request(
                    method, f"{host}/accurate/api/{path}", headers=headers, **kwargs
                )
            except AuthError:
                if attempt == 2:
                    raise
                host, session = await self.open_db(stale=session)
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

    async def save_invoice(self, number: str, form: list[tuple[str, str]]) -> int:
        """Save (create, or update when `form` names an `id`) a sales invoice; returns its id."""
        saved = await self._call("POST", "sales-invoice/save.do", f"invoice {number}", data=form)
        result = saved.get("r") or {}
        return int(result.get("id", 0))
