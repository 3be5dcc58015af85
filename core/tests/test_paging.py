"""Decoding vendor answers and walking their pages: what every poller's client relies on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from typing import Any, TypeVar

import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from pydantic import BaseModel
from sambung.plugin import (
    KeysetPaginator,
    NextUrlPaginator,
    PageNumberPaginator,
    Paginator,
    PagingStuck,
    RetriableError,
    UnreadableAnswer,
    VendorResponse,
    decode,
    paginate,
)

K = TypeVar("K", bound=Hashable)
P = TypeVar("P")


def answer(body: bytes) -> VendorResponse:
    return VendorResponse(200, CIMultiDictProxy(CIMultiDict()), body)


class Rows(BaseModel):
    data: list[int]
    last_page: int = 1
    next_url: str | None = None


def walk(fetch: Callable[[K], Awaitable[P | None]], pager: Paginator[K, P, Any]) -> list[Any]:
    async def collect() -> list[Any]:
        pages: AsyncIterator[list[Any]] = paginate(fetch, pager)
        return [rows async for rows in pages]

    return asyncio.run(collect())


class Vendor:
    """Answers from a table of pages by key, and remembers which keys were asked for."""

    def __init__(self, pages: dict[Any, Rows | None]) -> None:
        self.pages = pages
        self.asked: list[Any] = []

    async def __call__(self, key: Any) -> Rows | None:
        self.asked.append(key)
        return self.pages[key]


# -- decode -------------------------------------------------------------------------------------


def test_an_answer_decodes_into_its_model_with_exact_decimals() -> None:
    class Money(BaseModel):
        total: Any

    assert str(decode(answer(b'{"total": 755.0125}'), Money, what="x").total) == "755.0125"


def test_an_answer_decodes_into_a_plain_shape() -> None:
    rows = decode(answer(b'[{"id": "a"}, {"id": "b"}]'), list[dict[str, Any]], what="x")
    assert rows == [{"id": "a"}, {"id": "b"}]


@pytest.mark.parametrize(
    "body", [b"<html>502 Bad Gateway</html>", b'{"data": ', b'{"data": "not a list"}', b"[1]"]
)
def test_an_answer_that_is_not_the_shape_is_retriable_and_names_what(body: bytes) -> None:
    with pytest.raises(UnreadableAnswer, match=r"^Pawoon transactions: ") as raised:
        decode(answer(body), Rows, what="Pawoon transactions")
    assert isinstance(raised.value, RetriableError)
    assert raised.value.__cause__ is not None  # raised from the decoding error


def test_a_schema_error_does_not_echo_the_vendor_s_body() -> None:
    with pytest.raises(UnreadableAnswer) as raised:
        decode(answer(b'{"access": "s3cr3t-token-value"}'), Rows, what="token")
    assert "s3cr3t" not in str(raised.value)


# -- page numbers -------------------------------------------------------------------------------


def test_page_numbers_stop_at_a_short_page() -> None:
    vendor = Vendor({1: Rows(data=[1, 2]), 2: Rows(data=[3])})
    assert walk(vendor, PageNumberPaginator(lambda r: r.data, per_page=2)) == [[1, 2], [3]]
    assert vendor.asked == [1, 2]


def test_page_numbers_stop_at_an_empty_page_and_yield_none_of_it() -> None:
    vendor = Vendor({1: Rows(data=[1, 2]), 2: Rows(data=[])})
    assert walk(vendor, PageNumberPaginator(lambda r: r.data, per_page=2)) == [[1, 2]]
    assert vendor.asked == [1, 2]


def test_page_numbers_stop_at_the_last_page_the_vendor_names() -> None:
    vendor = Vendor({1: Rows(data=[1], last_page=2), 2: Rows(data=[2], last_page=2)})
    pager = PageNumberPaginator(lambda r: r.data, last_page=lambda r: r.last_page)
    assert walk(vendor, pager) == [[1], [2]]
    assert vendor.asked == [1, 2]


def test_no_page_at_all_is_an_empty_walk() -> None:
    vendor = Vendor({1: None})  # Olsera's 404 for a range with no orders
    assert walk(vendor, PageNumberPaginator(lambda r: r.data)) == []


# -- next URL -----------------------------------------------------------------------------------


def test_next_urls_are_followed_through_empty_pages_until_there_is_none() -> None:
    vendor = Vendor(
        {
            None: Rows(data=[1], next_url="https://v/2"),
            "https://v/2": Rows(data=[], next_url="https://v/3"),
            "https://v/3": Rows(data=[3]),
        }
    )
    pager: NextUrlPaginator[Rows, int] = NextUrlPaginator(lambda r: r.data, lambda r: r.next_url)
    assert walk(vendor, pager) == [[1], [3]]
    assert vendor.asked == [None, "https://v/2", "https://v/3"]


def test_a_next_url_already_read_stops_with_a_clear_error_not_a_loop() -> None:
    vendor = Vendor(
        {
            None: Rows(data=[1], next_url="https://v/2?key=s3cr3t"),
            "https://v/2?key=s3cr3t": Rows(data=[2], next_url="https://v/2?key=s3cr3t"),
        }
    )
    pager: NextUrlPaginator[Rows, int] = NextUrlPaginator(lambda r: r.data, lambda r: r.next_url)
    with pytest.raises(PagingStuck, match="already read") as raised:
        walk(vendor, pager)
    assert isinstance(raised.value, RetriableError)
    assert "s3cr3t" not in str(raised.value)  # a URL's query is never shown
    assert len(vendor.asked) == 2


# -- keyset -------------------------------------------------------------------------------------


def keyset(per_page: int) -> KeysetPaginator[list[dict[str, str]], dict[str, str]]:
    return KeysetPaginator(lambda rows: rows, lambda row: row.get("id"), per_page=per_page)


async def _by_last(pages: dict[str | None, list[dict[str, str]]], key: str | None) -> Any:
    return pages[key]


def test_a_keyset_walk_starts_each_page_after_the_last_row() -> None:
    pages: dict[str | None, list[dict[str, str]]] = {
        None: [{"id": "a"}, {"id": "b"}],
        "b": [{"id": "c"}],
    }
    assert walk(lambda key: _by_last(pages, key), keyset(2)) == [pages[None], pages["b"]]


def test_a_key_that_does_not_move_stops_with_a_clear_error() -> None:
    pages: dict[str | None, list[dict[str, str]]] = {
        None: [{"id": "a"}, {"id": "b"}],
        "b": [{"id": "a"}, {"id": "b"}],  # the vendor ignored last_invoice_id
    }
    with pytest.raises(PagingStuck, match="already read"):
        walk(lambda key: _by_last(pages, key), keyset(2))


def test_a_row_without_a_key_stops_paging() -> None:
    pages: dict[str | None, list[dict[str, str]]] = {None: [{"id": "a"}, {"name": "no id"}]}
    with pytest.raises(PagingStuck, match="without a key"):
        walk(lambda key: _by_last(pages, key), keyset(2))
