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
from sambung.plugin import InvalidRecord, RetriableError, VendorHttp, decode, timestamp


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
        from_date, page = since, 1
        seen_at_boundary: set[str] = set()
        while True:
            body = await self._get(from_date, page)
            rows = body.transactions
            fresh = [row for row in rows if str(row.get("id")) not in seen_at_boundary]
            if fresh:
                yield fresh
            if len(rows) < self.per_page:
                return
            try:
                newest = max(self.changed_at(row) for row in rows)
            except InvalidRecord as err:
                raise RetriableError("a row without a readable change time stops paging") from err
            if newest == from_date:
                page += 1  # a whole page of rows in one second: page within that second
            else:
                from_date, page = newest, 1
                seen_at_boundary = set()
            seen_at_boundary |= {
                str(row.get("id")) for row in rows if self._safe_changed_at(row) == from_date
            }

    def newest(self, rows: list[dict[str, Any]]) -> datetime | None:
        """The newest readable change time among `rows`: how far a page is complete."""
        times = [t for t in map(self._safe_changed_at, rows) if t is not None]
        return max(times) if times else None

    def _safe_changed_at(self, row: dict[str, Any]) -> datetime | None:
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
