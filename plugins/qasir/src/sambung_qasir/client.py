"""The only code that talks to Qasir: `GET /transactions?from_date=...` with a bearer key.

Qasir's API is not public (VENDORS.md): this follows the seed. Rows come oldest change first;
the client pages by *keyset* (the next request starts at the newest change time seen, skipping
rows already yielded at that instant), so a row updated while we page through moves to the end
and is read again instead of pushing an unread row off a page.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, SecretStr
from sambung.plugin import (
    InvalidRecord,
    Paginator,
    RetriableError,
    VendorHttp,
    decode,
    paginate,
    timestamp,
)


class Meta(BaseModel):
    """Paging facts Qasir sends beside the rows (optional)."""

    model_config = ConfigDict(extra="ignore")

    page: int = 1
    per_page: int | None = None
    last_page: int | None = None


class TransactionsPage(BaseModel):
    """One answer of `GET /transactions`."""

    model_config = ConfigDict(extra="ignore")

    transactions: list[dict[str, Any]]
    meta: Meta | None = None


class ChangeTimeKeyset(Paginator[tuple[datetime, int], TransactionsPage, dict[str, Any]]):
    """Qasir's keyset: each request starts at the newest change time seen (`from_date`), and
    pages within that instant only while a whole page shares it; rows already yielded at the
    boundary instant are dropped from the next answer, which repeats them."""

    def __init__(self, client: QasirClient, since: datetime) -> None:
        super().__init__(self._fresh, (since, 1))
        self.client = client
        self.seen_at_boundary: set[str] = set()

    def _fresh(self, body: TransactionsPage) -> list[dict[str, Any]]:
        return [row for row in body.transactions if str(row.get("id")) not in self.seen_at_boundary]

    def next_key(
        self, page: TransactionsPage, rows: list[dict[str, Any]], key: tuple[datetime, int]
    ) -> tuple[datetime, int] | None:
        """Where the answer after `page` starts, or None after a short page."""
        answered = page.transactions
        if len(answered) < self.client.per_page:
            return None
        try:
            newest = max(self.client.changed_at(row) for row in answered)
        except InvalidRecord as err:
            raise RetriableError("a row without a readable change time stops paging") from err
        from_date, number = key
        if newest == from_date:
            number += 1  # a whole page of rows in one second: page within that second
        else:
            from_date, number = newest, 1
            self.seen_at_boundary = set()
        self.seen_at_boundary |= {
            str(row.get("id")) for row in answered if self.client.safe_changed_at(row) == from_date
        }
        return from_date, number


class QasirClient:
    """Qasir's transactions endpoint, through core's HTTP client."""

    def __init__(
        self, http: VendorHttp, base_url: str, api_key: SecretStr, *, per_page: int, tz: ZoneInfo
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.per_page = per_page
        self.tz = tz

    def changed_at(self, row: dict[str, Any]) -> datetime:
        """A row's change time (`updated_at`, else `created_at`), aware."""
        value = row.get("updated_at") or row.get("created_at")
        return timestamp(value, self.tz, "updated_at")

    async def transactions(self, since: datetime) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of rows changed since `since`, oldest first, each row once per run."""

        async def fetch(key: tuple[datetime, int]) -> TransactionsPage:
            return await self._get(*key)

        async for rows in paginate(fetch, ChangeTimeKeyset(self, since)):
            yield rows

    def newest(self, rows: list[dict[str, Any]]) -> datetime | None:
        """The newest readable change time among `rows`: how far a page is complete."""
        times = [t for t in map(self.safe_changed_at, rows) if t is not None]
        return max(times) if times else None

    def safe_changed_at(self, row: dict[str, Any]) -> datetime | None:
        """`changed_at`, or None when the row's time is unreadable."""
        try:
            return self.changed_at(row)
        except InvalidRecord:
            return None

    async def _get(self, from_date: datetime, page: int) -> TransactionsPage:
        response = await self.http.get(
            f"{self.base_url}/transactions",
            params={
                "from_date": from_date.astimezone(self.tz).isoformat(timespec="seconds"),
                "page": str(page),
                "per_page": str(self.per_page),
            },
            headers={"Authorization": f"Bearer {self.api_key.get_secret_value()}"},
        )
        return decode(response, TransactionsPage, what="Qasir transactions")
