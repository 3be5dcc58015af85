"""Qasir's keyset paging against its fake: every row once, however the rows share seconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from pydantic import SecretStr
from sambung.plugin import VendorHttp
from sambung_qasir.client import QasirClient
from sambung_qasir.fake import QasirFake

START = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)


async def ids_polled(fake: QasirFake, per_page: int) -> list[str]:
    async with fake.serve() as url, aiohttp.ClientSession() as session:
        client = QasirClient(
            VendorHttp(session),
            f"{url}/v1",
            SecretStr("qasir-test-key"),
            per_page=per_page,
            tz=ZoneInfo("Asia/Jakarta"),
        )
        return [str(row["id"]) async for page in client.transactions(START) for row in page]


@pytest.mark.parametrize(
    "step", [timedelta(seconds=30), timedelta(0)], ids=["a-second-each", "all-in-one-second"]
)
async def test_every_row_is_read_once_across_pages(step: timedelta) -> None:
    fake = QasirFake()
    fake.seed(45, START, step)
    ids = await ids_polled(fake, per_page=20)
    assert sorted(ids) == sorted(str(row.data["id"]) for row in fake.rows.values())
    assert len(ids) == len(set(ids)) == 45
