"""The only code that polls Pawoon: a client-credentials token, then `GET /transactions` by
device-timestamp window, page by page (VENDORS.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, SecretStr
from sambung.plugin import (
    AuthError,
    PageNumberPaginator,
    Token,
    VendorHttp,
    decode,
    paginate,
    with_token,
)

_TIME = "%Y-%m-%d %H:%M:%S"


class TokenAnswer(BaseModel):
    """`POST /oauth/token`."""

    model_config = ConfigDict(extra="ignore")

    access_token: str
    expires_in: int = 3600


class TransactionsPage(BaseModel):
    """One answer of `GET /transactions`."""

    model_config = ConfigDict(extra="ignore")

    data: list[dict[str, Any]]


class PawoonClient:
    """Pawoon's open API through core's HTTP client and token cache."""

    def __init__(
        self,
        http: VendorHttp,
        base_url: str,
        client_id: str,
        client_secret: SecretStr,
        *,
        pawoon_outlet_id: str | None,
        per_page: int,
        tz: ZoneInfo,
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.pawoon_outlet_id = pawoon_outlet_id
        self.per_page = per_page
        self.tz = tz

    @property
    def token_key(self) -> str:
        """The account's key in the token cache."""
        return f"pawoon:{self.client_id}"

    async def _fetch_token(self, _previous: Token | None) -> Token:
        try:
            response = await self.http.post(
                f"{self.base_url}/oauth/token",
                json={
                    "grant_type": "client_credentials",
                    "client_id": self.client_id,
                    "client_secret": self.client_secret.get_secret_value(),
                },
            )
        except AuthError as err:
            raise AuthError(f"Pawoon refused the client credentials: {err}") from err
        answer = decode(response, TokenAnswer, what="Pawoon token")
        return Token(SecretStr(answer.access_token), self.http.tokens.expires_in(answer.expires_in))

    def forget_token(self) -> None:
        """Drop the cached token (after the vendor refused it)."""
        self.http.tokens.invalidate(self.token_key)

    async def transactions(
        self, since: datetime, until: datetime
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of transactions whose device time is in [since, until], oldest first.

        Pawoon's `meta` is `{count, total, per_page}` with no `last_page`: a page shorter than
        asked for (or empty) is the last.
        """

        async def fetch(page: int) -> TransactionsPage:
            params = {
                "start_device_timestamp": since.astimezone(self.tz).strftime(_TIME),
                "end_device_timestamp": until.astimezone(self.tz).strftime(_TIME),
                "page": str(page),
                "per_page": str(self.per_page),
            }
            if self.pawoon_outlet_id:
                params["outlet_id"] = self.pawoon_outlet_id
            response = await with_token(
                self.http,
                self.token_key,
                self._fetch_token,
                "GET",
                f"{self.base_url}/transactions",
                params=params,
            )
            return decode(response, TransactionsPage, what="Pawoon transactions")

        pages: PageNumberPaginator[TransactionsPage, dict[str, Any]]
        pages = PageNumberPaginator(lambda body: body.data, per_page=self.per_page)
        async for rows in paginate(fetch, pages):
            yield rows
