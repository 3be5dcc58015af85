"""The jurnal sink against the fake Jurnal, which verifies every signature."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from sambung.plugin import RetriableError, SinkPaused
from sambung.testing.accounting import SINK, AccountingRig, days_ago, sale
from sambung.testing.core import sink_status, sink_table
from sambung_jurnal.client import API, mekari_headers
from sambung_jurnal.fake import FakeJurnal

CLIENT, SECRET = "jurnal-client", "jurnal-secret"
PATH = f"{API}/sales_invoices"


def sink_block(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "jurnal",
        "client_id": CLIENT,
        "client_secret": SECRET,
        "base_url": url,
        "default_item": "Penjualan",
        "default_customer": "Pelanggan Umum",
        "charge_items": {"tax": "PPN Keluaran"},
        "rate_per_minute": 6000,
        **extra,
    }


@asynccontextmanager
async def running(tmp_path: Path, fake: FakeJurnal, **extra: Any) -> AsyncIterator[AccountingRig]:
    async with fake.serve() as url:
        block = sink_block(url, **extra)
        async with AccountingRig.start(tmp_path, block, summary_after="47:00") as rig:
            fake.clock = rig.clock  # signatures are checked against the time the test sets
            yield rig


async def send(url: str, body: bytes, headers: dict[str, str]) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + PATH, data=body, headers=headers) as answer,
    ):
        return answer.status


def invoice_json(custom_id: str = "SMB-1") -> bytes:
    body = {
        "sales_invoice": {
            "custom_id": custom_id,
            "transaction_no": custom_id,
            "transaction_lines_attributes": [],
        }
    }
    return json.dumps(body).encode()


async def test_the_fake_accepts_our_signature_and_refuses_a_skewed_date_or_changed_body() -> None:
    fake = FakeJurnal(client_id=CLIENT, client_secret=SECRET)
    async with fake.serve() as url:
        now = datetime.now(UTC)
        body = invoice_json("SMB-1")
        assert await send(url, body, mekari_headers(CLIENT, SECRET, "POST", PATH, body, now)) == 201

        skewed = mekari_headers(
            CLIENT, SECRET, "POST", PATH, invoice_json("SMB-2"), now - timedelta(seconds=301)
        )
        assert await send(url, invoice_json("SMB-2"), skewed) == 401

        signed = mekari_headers(CLIENT, SECRET, "POST", PATH, invoice_json("SMB-3"), now)
        assert await send(url, invoice_json("SMB-4"), signed) == 401

        wrong = mekari_headers(CLIENT, "not-the-secret", "POST", PATH, invoice_json("SMB-5"), now)
        assert await send(url, invoice_json("SMB-5"), wrong) == 401

        elsewhere = mekari_headers(
            CLIENT, SECRET, "POST", f"{API}/customers", invoice_json("SMB-6"), now
        )
        assert await send(url, invoice_json("SMB-6"), elsewhere) == 401

        assert fake.rejected == [
            "Date is too far from now",
            "Digest does not match the body",
            "signature does not match",
            "signature does not match",
        ]
        assert list(fake.invoices) == ["SMB-1"]


async def test_a_daily_summary_posts_once_and_a_late_sale_updates_it(tmp_path: Path) -> None:
    fake = FakeJurnal(client_id=CLIENT, client_secret=SECRET)
    async with running(tmp_path, fake) as rig:
        day = days_ago(2, 9)
        await rig.ingest(
            sale("S-1", at=day, items=[("KOPI", "Es Kopi", 2, 18000)], tax=3960),
            sale("S-2", at=day, items=[("ROTI", "Roti", 1, 12000)]),
        )
        await rig.summarise()
        assert await rig.drain() == 1
        [number] = fake.invoices
        assert fake.total_of(number) == "51960"

        await rig.ingest(sale("S-3", at=day, items=[("ROTI", "Roti", 1, 12000)]))
        await rig.summarise()
        seen = len(fake.requests)
        assert await rig.drain() == 1
        assert list(fake.invoices) == [number] and fake.updated == 1
        assert fake.total_of(number) == "63960"
        assert fake.rejected == [] and await rig.dead_letters() == []
        # As the working integration does: look up by transaction number, PATCH by numeric id.
        numeric = fake.invoices[number]["id"]
        assert [(r.method, r.path, r.status) for r in fake.requests[seen:]] == [
            ("GET", f"{PATH}/{number}", 200),
            ("PATCH", f"{PATH}/{numeric}", 200),
        ]


async def a_day_posted(rig: AccountingRig) -> datetime:
    """A business date with one sale, summarised and posted; returns a time on that day."""
    day = days_ago(2, 9)
    await rig.ingest(sale("S-1", at=day, items=[("KOPI", "Es Kopi", 1, 18000)]))
    await rig.summarise()
    assert await rig.drain() == 1
    return day


async def a_late_sale(rig: AccountingRig, day: datetime) -> None:
    """Another sale on `day`, summarised: the day's invoice has a second revision to post."""
    await rig.ingest(sale("S-2", at=day, items=[("KOPI", "Es Kopi", 1, 18000)]))
    await rig.summarise()


async def test_a_later_revision_jurnal_does_not_have_is_created(tmp_path: Path) -> None:
    fake = FakeJurnal(client_id=CLIENT, client_secret=SECRET)
    async with running(tmp_path, fake) as rig:
        day = await a_day_posted(rig)
        fake.invoices.clear()  # deleted in Jurnal by the bookkeeper

        await a_late_sale(rig, day)
        assert await rig.drain() == 1
        [number] = fake.invoices
        assert fake.total_of(number) == "36000" and fake.updated == 0
        assert [(r.method, r.status) for r in fake.requests[-2:]] == [("GET", 422), ("POST", 201)]


async def test_a_base_url_with_a_path_prefix_is_signed_with_the_prefix(tmp_path: Path) -> None:
    fake = FakeJurnal(client_id=CLIENT, client_secret=SECRET, prefix="/gateway/mekari")
    async with fake.serve() as url:
        block = sink_block(url + "/gateway/mekari")
        async with AccountingRig.start(tmp_path, block, summary_after="47:00") as rig:
            fake.clock = rig.clock
            await a_late_sale(rig, await a_day_posted(rig))
            assert await rig.drain() == 1

            assert fake.rejected == [] and await rig.dead_letters() == []
            assert fake.created == 1 and fake.updated == 1
            assert {r.path.split("/sales_invoices")[0] for r in fake.requests} == {
                f"/gateway/mekari{API}"
            }


async def test_a_failing_look_up_is_retried_not_dead_lettered(tmp_path: Path) -> None:
    fake = FakeJurnal(client_id=CLIENT, client_secret=SECRET)
    async with running(tmp_path, fake) as rig:
        await a_late_sale(rig, await a_day_posted(rig))
        item = max(await rig.deliveries(), key=lambda d: d.revision)
        assert item.revision == 2

        fake.faults.fail(503, path="/sales_invoices/")
        [result] = await rig.sink.deliver([item])
        assert isinstance(result, RetriableError)
        fake.throttle()
        [result] = await rig.sink.deliver([item])
        assert isinstance(result, RetriableError) and result.retry_after == 60

        assert await rig.sink.deliver([item]) == [None]
        assert fake.updated == 1 and len(fake.invoices) == 1


async def test_a_409_counts_as_delivered(tmp_path: Path) -> None:
    fake = FakeJurnal(client_id=CLIENT, client_secret=SECRET)
    async with running(tmp_path, fake, post="per_transaction") as rig:
        await rig.ingest(sale("S-1", at=days_ago(1, 9), items=[("KOPI", "Es Kopi", 1, 18000)]))
        await rig.drain()
        assert fake.created == 1

        # Delivered again (as after a crash before settling): Jurnal says 409, which is success.
        assert await rig.sink.deliver(await rig.deliveries()) == [None]
        assert [r.status for r in fake.requests] == [201, 409]
        assert fake.created == 1 and fake.updated == 0


async def test_a_bare_429_is_retried_after_a_minute(tmp_path: Path) -> None:
    fake = FakeJurnal(client_id=CLIENT, client_secret=SECRET)
    async with running(tmp_path, fake, post="per_transaction") as rig:
        await rig.ingest(sale("S-1", at=days_ago(1, 9), items=[("KOPI", "Es Kopi", 1, 18000)]))
        fake.throttle()
        [item] = await rig.deliveries()
        [result] = await rig.sink.deliver([item])
        assert isinstance(result, RetriableError) and result.retry_after == 60

        await rig.drain()
        [row] = await rig.store.list_outbox()
        assert row.status == "delivered"


async def test_a_used_up_monthly_limit_pauses_the_sink_until_next_month(tmp_path: Path) -> None:
    fake = FakeJurnal(client_id=CLIENT, client_secret=SECRET)
    async with running(tmp_path, fake, post="per_transaction") as rig:
        fake.exhaust_monthly_quota()
        await rig.ingest(
            *(sale(f"S-{n}", at=days_ago(1, 9), items=[("KOPI", "K", 1, 18000)]) for n in range(3))
        )
        await rig.drain()

        runtime = rig.dispatcher.sinks[SINK]
        assert runtime.paused_until is not None
        assert runtime.paused_until.astimezone(UTC) > rig.clock.now()
        assert runtime.paused_until.day == 1
        calls = len(fake.requests)
        assert calls <= 3  # no more than the batch in flight when the answer came

        # Days later it is still paused: nothing is sent, nothing is dead.
        rig.clock.advance(3600)
        assert await rig.dispatcher.drain_once(SINK) == 0
        assert len(fake.requests) == calls
        assert await rig.dead_letters() == []
        rows = await rig.store.list_outbox()
        assert {r.status for r in rows} == {"pending"}
        [status] = await sink_status(rig.store, rig.loaded, rig.clock.now(), rig.dispatcher)
        assert status["paused_until"] == runtime.paused_until.isoformat()
        assert "paused until" in sink_table([status])

        # The new month comes: the rows go.
        fake.faults.pending.clear()
        rig.clock.advance((runtime.paused_until - rig.clock.now()).total_seconds() + 1)
        await rig.drain()
        assert runtime.paused_until is None
        assert fake.created == 3


async def test_a_paused_sink_answers_without_calling(tmp_path: Path) -> None:
    fake = FakeJurnal(client_id=CLIENT, client_secret=SECRET)
    async with running(tmp_path, fake, post="per_transaction") as rig:
        fake.exhaust_monthly_quota(times=1)
        await rig.ingest(sale("S-1", at=days_ago(1, 9), items=[("KOPI", "K", 1, 18000)]))
        [item] = await rig.deliveries()
        [first] = await rig.sink.deliver([item])
        [second] = await rig.sink.deliver([item])
        assert isinstance(first, SinkPaused) and isinstance(second, SinkPaused)
        assert len(fake.requests) == 1


async def test_a_timed_out_update_is_retried_and_updates_once(tmp_path: Path) -> None:
    fake = FakeJurnal(client_id=CLIENT, client_secret=SECRET)
    async with running(tmp_path, fake, timeout_seconds=0.2) as rig:
        await a_late_sale(rig, await a_day_posted(rig))
        item = max(await rig.deliveries(), key=lambda d: d.revision)
        fake.faults.slow(1.0, path="/sales_invoices/")

        [result] = await rig.sink.deliver([item])
        assert isinstance(result, RetriableError)
        assert await rig.sink.deliver([item]) == [None]
        assert len(fake.invoices) == 1 and fake.updated >= 1
