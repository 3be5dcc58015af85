"""The accurate sink against the fake Accurate, with the summary loop and the dispatcher."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
from sambung.plugin import AuthError, RetriableError
from sambung.testing.accounting import SINK, AccountingRig, days_ago, sale
from sambung.testing.manual_clock import ManualClock
from sambung_accurate.client import api_signature
from sambung_accurate.fake import FakeAccurate

TOKEN, SECRET = "aat.MDAwMDA.test-token", "signature-secret"


def sink_block(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "accurate",
        "api_token": TOKEN,
        "signature_secret": SECRET,
        "account_url": url,
        "items": {"KOPI": "KOPI", "ROTI": "ROTI"},
        "customers": {"kemang": "C-KEMANG"},
        "branches": {"kemang": "Kemang"},
        "charge_items": {"tax": "PPN"},
        **extra,
    }


@asynccontextmanager
async def running(tmp_path: Path, fake: FakeAccurate, **extra: Any) -> AsyncIterator[AccountingRig]:
    async with (
        fake.serve() as url,
        AccountingRig.start(tmp_path, sink_block(url, **extra), summary_after="47:00") as rig,
    ):
        fake.clock = rig.clock  # signatures are checked against the time the test sets
        yield rig


def only_invoice(fake: FakeAccurate) -> Any:
    [invoice] = fake.invoices.values()
    return invoice


async def test_a_business_date_posts_as_one_invoice_updated_by_a_late_sale(tmp_path: Path) -> None:
    fake = FakeAccurate(api_token=TOKEN, signature_secret=SECRET, items={"KOPI", "ROTI", "PPN"})
    async with running(tmp_path, fake) as rig:
        day = days_ago(2, 9)
        await rig.ingest(
            sale("S-1", at=day, items=[("KOPI", "Es Kopi", 2, 18000)], tax=3960),
            sale("S-2", at=day, items=[("ROTI", "Roti", 1, 12000)]),
            sale("S-3", at=day, items=[("KOPI", "Es Kopi", 1, 18000)]),
        )
        await rig.summarise()
        assert await rig.drain() == 1

        invoice = only_invoice(fake)
        assert invoice.fields["transDate"] == day.strftime("%d/%m/%Y")
        assert invoice.fields["customerNo"] == "C-KEMANG"
        assert invoice.fields["branchName"] == "Kemang"
        assert fake.total_of(invoice.number) == Decimal(18000 * 3 + 12000 + 3960)

        # A late sale for the same day: the same invoice, saved over (by its id).
        await rig.ingest(sale("S-4", at=day.replace(hour=22), items=[("ROTI", "Roti", 2, 12000)]))
        await rig.summarise()
        assert await rig.drain() == 1
        assert only_invoice(fake) is invoice and invoice.saves == 2
        assert fake.total_of(invoice.number) == Decimal(18000 * 3 + 12000 * 3 + 3960)

        # A re-run posts nothing new.
        calls = len(fake.requests)
        await rig.summarise()
        assert await rig.drain() == 0
        assert len(fake.requests) == calls
        assert await rig.dead_letters() == []


async def test_an_accurate_refusal_is_a_dead_letter_with_accurates_message(tmp_path: Path) -> None:
    fake = FakeAccurate(api_token=TOKEN, signature_secret=SECRET, items={"KOPI"})
    async with running(tmp_path, fake, post="per_transaction") as rig:
        await rig.ingest(sale("S-1", at=days_ago(1, 9), items=[("ROTI", "Roti", 1, 12000)]))
        await rig.drain()

        [entry] = await rig.dead_letters()
        assert entry.error_type == "DeliveryRejected"
        assert "Barang dengan nomor ROTI tidak ditemukan" in entry.error
        assert entry.sink == SINK
        assert TOKEN not in entry.error and SECRET not in entry.error
        assert fake.invoices == {}


async def test_per_transaction_posts_each_sale_once_even_when_redelivered(tmp_path: Path) -> None:
    fake = FakeAccurate(api_token=TOKEN, signature_secret=SECRET)
    async with running(tmp_path, fake, post="per_transaction") as rig:
        await rig.ingest(
            sale("S-1", at=days_ago(1, 9), items=[("KOPI", "Es Kopi", 1, 18000)]),
            sale("S-2", at=days_ago(1, 10), items=[("ROTI", "Roti", 1, 12000)]),
        )
        assert await rig.drain() == 2
        assert len(fake.invoices) == 2

        # Deliver the same rows again, as after a crash before they were settled.
        assert await rig.sink.deliver(await rig.deliveries()) == [None, None]
        assert len(fake.invoices) == 2
        assert sorted(i.saves for i in fake.invoices.values()) == [2, 2]
        # No summary is made for a sink posting one by one.
        assert await rig.summarise() == 0


async def test_an_api_token_finds_its_host_with_api_token_do_and_opens_no_session(
    tmp_path: Path,
) -> None:
    fake = FakeAccurate(api_token=TOKEN, signature_secret=SECRET)
    async with running(tmp_path, fake, post="per_transaction") as rig:
        await rig.ingest(
            sale("S-1", at=days_ago(1, 9), items=[("KOPI", "Es Kopi", 1, 18000)]),
            sale("S-2", at=days_ago(1, 10), items=[("KOPI", "Es Kopi", 1, 18000)]),
        )
        assert await rig.drain() == 2

        paths = [r.path for r in fake.requests]
        assert paths.count("/api/api-token.do") == 1
        assert "/api/open-db.do" not in paths and "/api/db-list.do" not in paths
        assert fake.sessions == set() and fake.token_refusals == []
        assert len(fake.invoices) == 2


async def test_a_timestamp_in_the_old_millisecond_form_is_refused_as_accurate_would(
    tmp_path: Path,
) -> None:
    fake = FakeAccurate(api_token=TOKEN, signature_secret=SECRET)
    async with fake.serve() as url, aiohttp.ClientSession() as session:
        stamp = str(int(datetime.now(UTC).timestamp() * 1000))
        headers = {
            "Authorization": f"Bearer {TOKEN}",
            "X-Api-Timestamp": stamp,
            "X-Api-Signature": api_signature(SECRET, stamp),
        }
        async with session.post(f"{url}/api/api-token.do", headers=headers) as answer:
            assert answer.status == 401
        assert fake.token_refusals == [
            "X-Api-Timestamp is neither dd/MM/yyyy HH:mm:ss nor ISO-8601"
        ]


async def test_a_skewed_timestamp_or_an_expired_token_is_an_auth_error(tmp_path: Path) -> None:
    fake = FakeAccurate(api_token=TOKEN, signature_secret=SECRET)
    async with running(tmp_path, fake, post="per_transaction") as rig:
        await rig.ingest(sale("S-1", at=days_ago(1, 9), items=[("KOPI", "Es Kopi", 1, 18000)]))
        [item] = await rig.deliveries()

        fake.clock = ManualClock(rig.clock.now() + timedelta(minutes=6))
        [result] = await rig.sink.deliver([item])
        assert isinstance(result, AuthError)
        assert fake.token_refusals == ["X-Api-Timestamp is too far from now"]

        fake.clock = rig.clock
        assert await rig.sink.deliver([item]) == [None]

        def discoveries() -> int:
            return [r.path for r in fake.requests].count("/api/api-token.do")

        before = discoveries()
        fake.expire_api_token()
        [result] = await rig.sink.deliver([item])
        assert isinstance(result, AuthError)
        assert fake.token_refusals[-1] == "API token expired"
        # The host was asked for again once before giving up (the database may have moved).
        assert discoveries() == before + 1


async def test_a_configured_zone_and_iso_form_are_what_the_fake_checks(tmp_path: Path) -> None:
    fake = FakeAccurate(api_token=TOKEN, signature_secret=SECRET)
    extra = {"api_timestamp_format": "iso8601", "api_timestamp_zone": "Asia/Makassar"}
    async with running(tmp_path, fake, post="per_transaction", **extra) as rig:
        await rig.ingest(sale("S-1", at=days_ago(1, 9), items=[("KOPI", "Es Kopi", 1, 18000)]))
        assert await rig.drain() == 1
        assert fake.token_refusals == [] and len(fake.invoices) == 1


async def test_a_timed_out_save_is_retried_and_saves_one_invoice(tmp_path: Path) -> None:
    fake = FakeAccurate(api_token=TOKEN, signature_secret=SECRET)
    async with running(tmp_path, fake, post="per_transaction", timeout_seconds=0.2) as rig:
        await rig.ingest(sale("S-1", at=days_ago(1, 9), items=[("KOPI", "Es Kopi", 1, 18000)]))
        [item] = await rig.deliveries()
        fake.faults.slow(1.0, path="save.do")
        [result] = await rig.sink.deliver([item])
        assert isinstance(result, RetriableError)

        # Saved or not by the slow call, the retry ends with exactly one invoice.
        assert await rig.sink.deliver([item]) == [None]
        assert len(fake.invoices) == 1


async def test_wrong_credentials_are_an_auth_error_and_busy_answers_are_retried(
    tmp_path: Path,
) -> None:
    fake = FakeAccurate(api_token=TOKEN, signature_secret="another-secret")
    async with running(tmp_path, fake, post="per_transaction") as rig:
        await rig.ingest(sale("S-1", at=days_ago(1, 9), items=[("KOPI", "Es Kopi", 1, 18000)]))
        sink = rig.sink
        [item] = await rig.deliveries()
        [result] = await sink.deliver([item])
        assert isinstance(result, AuthError)

        fake.signature_secret = SECRET
        fake.faults.fail(503, path="save.do")
        [result] = await sink.deliver([item])
        assert isinstance(result, RetriableError)
        fake.faults.fail(429, path="list.do", headers={"Retry-After": "3"})
        [result] = await sink.deliver([item])
        assert isinstance(result, RetriableError) and result.retry_after == 3
        assert await sink.deliver([item]) == [None]


async def test_deliveries_stay_within_eight_in_flight(tmp_path: Path) -> None:
    fake = FakeAccurate(api_token=TOKEN, signature_secret=SECRET)
    async with running(tmp_path, fake, post="per_transaction", concurrency=32) as rig:
        await rig.ingest(
            *(
                sale(f"S-{n}", at=days_ago(1, 9), items=[("KOPI", "Es Kopi", 1, 18000)])
                for n in range(24)
            )
        )
        for _ in range(5):  # a rare 429 (a request held up in a busy machine) is retried
            await rig.drain()
            rig.clock.advance(10)
        assert len(fake.invoices) == 24
        assert fake.max_in_flight <= 8


async def test_the_fake_enforces_accurates_limits() -> None:
    fake = FakeAccurate(api_token=TOKEN, signature_secret=SECRET)
    fake.faults.slow(0.3, times=16, path="list.do")
    async with fake.serve() as url, aiohttp.ClientSession() as session:
        from sambung.plugin import SystemClock
        from sambung_accurate.client import ApiTokenAuth

        auth = ApiTokenAuth(*_secrets(), SystemClock())

        async def one() -> int:
            headers = await auth.headers()
            async with session.get(
                f"{url}/accurate/api/sales-invoice/list.do", headers=headers
            ) as a:
                return a.status

        statuses = await asyncio.gather(*(one() for _ in range(12)))
        assert statuses.count(429) >= 4 and statuses.count(200) <= 8


def _secrets() -> tuple[Any, Any]:
    from pydantic import SecretStr

    return SecretStr(TOKEN), SecretStr(SECRET)


async def test_a_daily_summary_sink_gets_no_single_transactions(tmp_path: Path) -> None:
    fake = FakeAccurate(api_token=TOKEN, signature_secret=SECRET)
    async with running(tmp_path, fake) as rig:
        result = await rig.ingest(sale("S-1", at=days_ago(2, 9), items=[("KOPI", "K", 1, 1000)]))
        assert result.outbox_rows == 0
        assert rig.loaded.sink_kinds(SINK) == ("daily_summary",)
        await rig.summarise()
        [row] = await rig.store.list_outbox()
        assert '"kind":"daily_summary"' in row.payload


def test_kinds_the_sink_never_takes_are_a_config_problem(tmp_path: Path) -> None:
    import pytest
    import yaml
    from sambung.plugin import ConfigError
    from sambung.testing.core import load_config, load_plugins

    document = {
        "outlets": [{"id": "kemang", "name": "Kemang"}],
        "sinks": {"books": {**sink_block("http://127.0.0.1:1"), "kinds": ["transaction"]}},
    }
    path = tmp_path / "sambung.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")

    with pytest.raises(ConfigError, match=r"sinks\.books\.kinds: .*takes only daily_summary"):
        load_config(path, load_plugins())
