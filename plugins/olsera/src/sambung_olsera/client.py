"""The only code that talks to Olsera: a token from app id and secret key (refreshed with the
refresh token), then closed orders page by page until `meta.last_page` (VENDORS.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, SecretStr
from sambung.plugin import (
    AuthError,
    PageNumberPaginator,
    RequestRejected,
    Token,
    VendorHttp,
    decode,
    paginate,
    with_token,
)

TOKEN_PATH = "/api/open-api/v1/id/token"
ORDERS_PATH = "/api/open-api/v1/en/order/closeorder"
DETAIL_PATH = "/api/open-api/v1/en/order/closeorder/detail"


class TokenAnswer(BaseModel):
    """The token endpoint's answer."""

    model_config = ConfigDict(extra="ignore")

    access_token: str
    refresh_token: str | None = None
    expires_in: int = 86400


class Meta(BaseModel):
    """Paging facts of the closed-orders list."""

    model_config = ConfigDict(extra="ignore")

    current_page: int = 1
    last_page: int = 1


class OrdersPage(BaseModel):
    """One answer of the closed-orders list."""

    model_config = ConfigDict(extra="ignore")

    data: list[dict[str, Any]]
    meta: Meta


class OrderLines(BaseModel):
    """The `data` of a closed order's detail."""

    model_config = ConfigDict(extra="ignore")

    # Not validated row by row: a line that does not map is the mapping's to reject.
    orderitems: list[Any]


class OrderDetail(BaseModel):
    """One answer of `closeorder/detail?id=`."""

    model_config = ConfigDict(extra="ignore")

    data: OrderLines


class OlseraClient:
    """Olsera's open API through core's HTTP client and token cache."""

    def __init__(
        self, http: VendorHttp, base_url: str, app_id: str, secret_key: SecretStr, tz: ZoneInfo
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.app_id = app_id
        self.secret_key = secret_key
        self.tz = tz

    @property
    def token_key(self) -> str:
        """The account's key in the token cache."""
        return f"olsera:{self.app_id}"

    async def _token(self, previous: Token | None) -> Token:
        if previous is not None and previous.refresh_token is not None:
            grant = {
                "refresh_token": previous.refresh_token.get_secret_value(),
                "grant_type": "refresh_token",
            }
            try:
                return await self._grant(grant)
            except AuthError:
                pass  # an expired refresh token: start again from the secret key
        return await self._grant(
            {
                "app_id": self.app_id,
                "secret_key": self.secret_key.get_secret_value(),
                "grant_type": "secret_key",
            }
        )

    async def _grant(self, body: dict[str, str]) -> Token:
        response = await self.http.post(f"{self.base_url}{TOKEN_PATH}", json=body)
        answer = decode(response, TokenAnswer, what="Olsera token")
        refresh = SecretStr(answer.refresh_token) if answer.refresh_token else None
        return Token(
            SecretStr(answer.access_token), self.http.tokens.expires_in(answer.expires_in), refresh
        )

    def forget_token(self) -> None:
        """Drop the cached token (after the vendor refused it)."""
        self.http.tokens.invalidate(self.token_key)

    async def closed_orders(
        self, since: datetime, until: datetime
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of orders closed on the days of [since, until] (the filter is by date).

        Olsera answers a range with no orders with HTTP 404 `{"error": {...}}`: an empty page.
        """

        async def fetch(page: int) -> OrdersPage | None:
            try:
                response = await with_token(
                    self.http,
                    self.token_key,
                    self._token,
                    "GET",
                    f"{self.base_url}{ORDERS_PATH}",
                    params={
                        "page": str(page),
                        "start_date": since.astimezone(self.tz).strftime("%Y-%m-%d"),
                        "end_date": until.astimezone(self.tz).strftime("%Y-%m-%d"),
                    },
                )
            except RequestRejected as err:
                if err.status == 404:
                    return None  # "Data not found": no orders in the range
                raise
            return decode(response, OrdersPage, what="Olsera closed orders")

        pages: PageNumberPaginator[OrdersPage, dict[str, Any]] = PageNumberPaginator(
            lambda body: body.data, last_page=lambda body: body.meta.last_page
        )
        async for rows in paginate(fetch, pages):
            yield rows

    async def order_items(self, order_id: str) -> list[dict[str, Any]]:
        """The lines of one closed order (`closeorder/detail?id=`): its `orderitems`."""
        response = await with_token(
            self.http,
            self.token_key,
            self._token,
            "GET",
            f"{self.base_url}{DETAIL_PATH}",
            params={"id": order_id},
        )
        return decode(response, OrderDetail, what=f"Olsera order {order_id} detail").data.orderitems
