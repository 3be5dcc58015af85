"""Reading vendor answers: decode one into a typed shape, and walk a list page by page.

Every poller used to write the same two things: "decode this answer or raise `RetriableError`"
and a `while True` page loop. Here they are once, so a client is its endpoints and its shapes:

```python
async def fetch(page: int) -> TransactionsPage:
    return decode(await self.http.get(url, params={"page": str(page)}), TransactionsPage,
                  what="Pawoon transactions")

async for rows in paginate(fetch, PageNumberPaginator(lambda p: p.data, per_page=100)):
    yield rows
```

The paginators follow the Meltano Singer SDK's (page number, next URL, keyset): each knows
where the next page starts from the answer to the last one; `paginate` fetches, yields every
non-empty page of rows, and raises `PagingStuck` instead of asking for the same page again.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar, cast

from pydantic import TypeAdapter, ValidationError

from .errors import InvalidPayload, RetriableError
from .http import VendorResponse

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)  # where a page starts: a number, a URL, a last id
P = TypeVar("P")  # one decoded answer
R = TypeVar("R")  # one row of it


class UnreadableAnswer(RetriableError):
    """A vendor answered 2xx with something that is not the shape asked for (a proxy's HTML
    page, a half-written body, a changed schema): worth asking again later, never a crash."""


class PagingStuck(RetriableError):
    """A vendor pointed at a page already read (the same next URL, a key that did not move):
    following it would loop forever, so the run stops and is retried later."""


# Building a TypeAdapter compiles a validator: once per shape, not once per answer.
_ADAPTERS: dict[object, TypeAdapter[Any]] = {}


def _adapter(shape: object) -> TypeAdapter[Any]:
    adapter = _ADAPTERS.get(shape)
    if adapter is None:
        adapter = _ADAPTERS[shape] = TypeAdapter(shape)
    return adapter


def decode(response: VendorResponse, shape: type[T], *, what: str) -> T:
    """`response`'s JSON body validated as `shape` (a pydantic model, `list[dict[str, Any]]`,
    ...); `UnreadableAnswer` naming `what` when it is not JSON or not that shape."""
    try:
        return cast(T, _adapter(shape).validate_python(response.json()))
    except (InvalidPayload, ValidationError) as err:
        raise UnreadableAnswer(f"{what}: the answer is unreadable: {_first_line(err)}") from err


def _first_line(err: Exception) -> str:
    # pydantic's message lists every failing field over many lines; the first names the count.
    text = str(err)
    for line in text.splitlines()[1:3]:
        if line.strip():
            return f"{text.splitlines()[0]}: {line.strip()}"
    return text


class Paginator(ABC, Generic[K, P, R]):
    """Where the next page starts, read from the answer to the last one."""

    def __init__(self, rows: Callable[[P], list[R]], start: K) -> None:
        self.rows = rows
        self.start = start

    @abstractmethod
    def next_key(self, page: P, rows: list[R], key: K) -> K | None:
        """The key of the page after `page` (fetched with `key`); None when it was the last."""


class PageNumberPaginator(Paginator[int, P, R]):
    """Pages 1, 2, 3, ...; the last is the empty one, a short one (fewer than `per_page`
    rows, for vendors with no page count), or page `last_page(answer)` when the vendor says."""

    def __init__(
        self,
        rows: Callable[[P], list[R]],
        *,
        per_page: int | None = None,
        last_page: Callable[[P], int] | None = None,
        start: int = 1,
    ) -> None:
        super().__init__(rows, start)
        self.per_page = per_page
        self.last_page = last_page

    def next_key(self, page: P, rows: list[R], key: int) -> int | None:
        """`key + 1`, unless `page` was the last."""
        if not rows or (self.per_page is not None and len(rows) < self.per_page):
            return None
        if self.last_page is not None and key >= self.last_page(page):
            return None
        return key + 1


class NextUrlPaginator(Paginator[str | None, P, R]):
    """Follow the link each answer gives to the next (HATEOAS); the first page is key None
    (the client's own URL and query), the last one gives no link. Empty pages are followed."""

    def __init__(self, rows: Callable[[P], list[R]], next_url: Callable[[P], str | None]) -> None:
        super().__init__(rows, None)
        self.next_url = next_url

    def next_key(self, page: P, rows: list[R], key: str | None) -> str | None:
        """The answer's link, or None."""
        return self.next_url(page) or None


class KeysetPaginator(Paginator[str | None, P, R]):
    """Each page starts after the last row of the one before (`last_invoice_id`); the first
    is key None; the last is empty or short (fewer than `per_page` rows)."""

    def __init__(
        self, rows: Callable[[P], list[R]], key_of: Callable[[R], str | None], *, per_page: int
    ) -> None:
        super().__init__(rows, None)
        self.key_of = key_of
        self.per_page = per_page

    def next_key(self, page: P, rows: list[R], key: str | None) -> str | None:
        """The key of the page's last row; `PagingStuck` when that row has none."""
        if len(rows) < self.per_page:
            return None
        last = self.key_of(rows[-1])
        if not last:
            raise PagingStuck("a row without a key stops paging (the next page starts after it)")
        return last


async def paginate(
    fetch: Callable[[K], Awaitable[P | None]], paginator: Paginator[K, P, R]
) -> AsyncIterator[list[R]]:
    """Every non-empty page of rows, in the vendor's order, fetching the next only when asked.

    `fetch(key)` answers the page at `key` (the paginator's `start` first), or None when the
    vendor says there is nothing there (Olsera's 404 for an empty range). A key already
    fetched in this walk raises `PagingStuck` rather than reading the same pages forever.
    """
    key: K | None = paginator.start
    fetched: set[K] = set()
    while True:
        current = cast(K, key)
        fetched.add(current)
        page = await fetch(current)
        if page is None:
            return
        rows = paginator.rows(page)
        if rows:
            yield rows
        key = paginator.next_key(page, rows, current)
        if key is None:
            return
        if key in fetched:
            raise PagingStuck(f"the vendor pointed back at a page already read ({_shown(key)})")


def _shown(key: Hashable) -> str:
    # Never a URL's query: vendors put keys in it.
    return repr(key.split("?", 1)[0]) if isinstance(key, str) else repr(key)
