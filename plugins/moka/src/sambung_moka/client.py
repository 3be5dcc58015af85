"""The only code that polls Moka: `get_latest_transactions` by `updated_at`, following
`next_url` until `completed` (VENDORS.md), with the OAuth tokens given in the YAML."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, SecretStr
from sambung.errors import AuthError, InvalidPayload, RetriableError
from sambung.http import VendorHttp, with_token
from sambung.tokens import Token


class TokenAnswer(BaseModel):
    """`POST /oauth/token` with `grant_type=refresh_token`."""

    model_config = ConfigDict(extra="ignore")

    access_token: str
    refresh_token: str | None = None
    expires_in: int | None = None


class LatestTransactions(BaseModel):
    """The `data` of one answer of `get_latest_transactions`."""

    model_config = ConfigDict(extra="ignore")

    payments: list[dict[str, Any]]
    completed: bool = True
    next_url: str | None = None


class Answer(BaseModel):
    """The envelope Moka answers in."""

    model_config = ConfigDict(extra="ignore")

    data: LatestTransactions


class MokaClient:
    """Moka's reports API through core's HTTP client and token cache."""

    def __init__(
        self,
        http: VendorHttp,
        base_url: str,
        moka_outlet_id: str,
        *,
        access_token: SecretStr,
        refresh_token: SecretStr | None,
        client_id: str | None,
        client_secret: SecretStr | None,
        per_page: int,
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.moka_outlet_id = moka_outlet_id
        self.access_token = access_token
        self.refresh_token = refresh_token
        self.client_id = client_id
        self.client_secret = client_secret
        self.per_page = per_page

    @property
    def token_key(self) -> str:
        """The account's key in the token cache (the configured token identifies it)."""
        return f"moka:{self.client_id}:{hash(self.access_token.get_secret_value())}"

    async def _token(self, previous: Token | None) -> Token:
        if previous is None:
            return Token(self.access_token, refresh_token=self.refresh_token)
        refresh = previous.refresh_token
        if refresh is None or self.client_id is None or self.client_secret is None:
            raise AuthError("Moka refused the access token and no refresh token is configured")
        try:
            response = await self.http.post(
                f"{self.base_url}/oauth/token",
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": refresh.get_secret_value(),
                    "client_id": self.client_id,
                    "client_secret": self.client_secret.get_secret_value(),
                },
            )
            answer = TokenAnswer.model_validate(response.json())
        except (ValueError, InvalidPayload) as err:
            raise RetriableError(f"Moka token answer unreadable: {err}") from err
        expires = self.http.tokens.expires_in(answer.expires_in) if answer.expires_in else None
        # Moka may rotate the refresh token: the new one replaces the old (kept in memory for
        # now; persisting it belongs to the credential store).
        rotated = SecretStr(answer.refresh_token) if answer.refresh_token else refresh
        return Token(SecretStr(answer.access_token), expires, rotated)

    def forget_token(self) -> None:
        """Drop the cached token (after the vendor refused it)."""
        self.http.tokens.invalidate(self.token_key)

    async def payments(
        self, since: datetime, until: datetime
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of payments updated in [since, until], oldest first."""
        url: str | None = (
            f"{self.base_url}/v3/outlets/{self.moka_outlet_id}/reports/get_latest_transactions"
        )
        params: dict[str, str] | None = {
            "per_page": str(self.per_page),
            "since": str(int(since.timestamp())),
            "until": str(int(until.timestamp())),
            "time_filter": "updated_at",
            "reorder_type": "ASC",
        }
        while url is not None:
            response = await with_token(
                self.http, self.token_key, self._token, "GET", url, params=params
            )
            try:
                data = Answer.model_validate(response.json()).data
            except (ValueError, InvalidPayload) as err:
                raise RetriableError(f"Moka answered something that is not a page: {err}") from err
            if data.payments:
                yield data.payments
            if data.completed or not data.next_url:
                return
            url, params = data.next_url, None
