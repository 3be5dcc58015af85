"""What a poller may read back from the store: the records already kept for its outlet.

Most vendors list what changed since a cursor. Some cannot: Midtrans has no list endpoint, so
a gap (a notification that never came) is healed only by asking about order ids we already
know, from payments still pending or from POS sales that name them. `KnownRecords` is that
read-only view, bound to one outlet and handed to poll connectors as `context.known`; it reads
by business date (an indexed column), so a poller names how many days back it cares about.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from sambung.models import Outlet

if TYPE_CHECKING:
    from sambung.clock import Clock
    from sambung.store import IngestStore

# The most business days one look-up reads, so a setting cannot make a poll read the world.
MAX_DAYS = 31
# The most a backfill's window reads, newest day first.
MAX_WINDOW_DAYS = 366
# Set while a backfill polls: the window's business dates replace "the last N days", so a
# poller that heals from what is known (Midtrans) heals the backfilled window instead.
_window: ContextVar[tuple[datetime, datetime] | None] = ContextVar("known_window", default=None)


@contextmanager
def within(since: datetime, until: datetime) -> Iterator[None]:
    """Let every `KnownRecords` read in this context read the business dates of a window."""
    token = _window.set((since, until))
    try:
        yield
    finally:
        _window.reset(token)


@dataclass(frozen=True)
class KnownRecord:
    """One stored record as a poller sees it: identity, its unified JSON, when it was stored."""

    source_system: str
    kind: str
    external_id: str
    data: Mapping[str, Any]
    updated_at: datetime


class KnownRecords:
    """Read-only: the records stored for one outlet, by kind and recent business date."""

    def __init__(self, store: IngestStore, outlet: Outlet, clock: Clock) -> None:
        self._store = store
        self._outlet = outlet
        self._clock = clock

    def business_dates(self, days: int) -> list[date]:
        """The outlet's last `days` business dates, today first (at most `MAX_DAYS`); in a
        backfill (`within`), the dates of its window, newest first."""
        tz = self._outlet.timezone
        window = _window.get()
        if window is not None:
            first, last = (moment.astimezone(tz).date() for moment in window)
            span = min((last - first).days + 1, MAX_WINDOW_DAYS)
            return [last - timedelta(days=back) for back in range(max(1, span))]
        today = self._clock.now().astimezone(tz).date()
        return [today - timedelta(days=back) for back in range(max(1, min(days, MAX_DAYS)))]

    async def recent(
        self,
        kind: str,
        *,
        days: int,
        source_systems: Collection[str] | None = None,
        where: Mapping[str, Collection[Any]] | None = None,
        limit: int = 1000,
    ) -> list[KnownRecord]:
        """Records of `kind` on the outlet's last `days` business dates, newest day first.

        `source_systems` keeps those from these connectors only; `where` keeps those whose
        top-level unified field holds one of the values given (`{"status": {"pending"}}`).
        At most `limit` records are returned.
        """
        found: list[KnownRecord] = []
        for day in self.business_dates(days):
            for stored in await self._store.records_of_day(self._outlet.id, kind, day):
                if source_systems is not None and stored.source_system not in source_systems:
                    continue
                data = orjson.loads(stored.payload)
                if where and not all(data.get(k) in wanted for k, wanted in where.items()):
                    continue
                found.append(
                    KnownRecord(
                        stored.source_system,
                        stored.kind,
                        stored.external_id,
                        data,
                        stored.updated_at,
                    )
                )
                if len(found) >= limit:
                    return found
        return found
