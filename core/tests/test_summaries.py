"""Daily summaries: how a day's transactions add up, and the loop that keeps them current."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sambung.delivery.summaries import latest_closed, summarise
from sambung.models import DailySummary, TransactionType
from sambung.store import Outcome
from sambung.testing.accounting import JAKARTA, OUTLET, SINK, AccountingRig, days_ago, sale

DAY = date(2026, 11, 20)


def at(hour: int) -> datetime:
    return datetime(2026, 11, 20, hour, tzinfo=JAKARTA)


def test_sales_add_up_per_product_and_price() -> None:
    [summary] = summarise(
        OUTLET,
        DAY,
        [
            sale("S-1", at=at(9), items=[("KOPI", "Es Kopi", 2, 18000)], tax=3960),
            sale(
                "S-2", at=at(10), items=[("KOPI", "Es Kopi", 1, 18000), ("ROTI", "Roti", 1, 12000)]
            ),
            # A price change during the day: its own line, so quantity x price stays exact.
            sale("S-3", at=at(15), items=[("KOPI", "Es Kopi", 1, 20000)]),
        ],
    )

    assert summary.external_id == f"{OUTLET}:2026-11-20"
    assert summary.transactions == 3
    assert summary.subtotal == Decimal(86000)
    assert summary.tax == Decimal(3960)
    assert summary.total == Decimal(89960)
    assert [(line.sku, line.unit_price, line.quantity, line.total) for line in summary.lines] == [
        ("KOPI", 18000, 3, 54000),
        ("KOPI", 20000, 1, 20000),
        ("ROTI", 12000, 1, 12000),
    ]
    assert summary.source_ids == ("pawoon:S-1", "pawoon:S-2", "pawoon:S-3")


def test_refunds_count_against_and_voided_sales_count_nowhere() -> None:
    [summary] = summarise(
        OUTLET,
        DAY,
        [
            sale("S-1", at=at(9), items=[("KOPI", "Es Kopi", 2, 18000)]),
            sale("S-2", at=at(10), items=[("ROTI", "Roti", 1, 12000)]),
            sale(
                "V-2",
                at=at(10),
                items=[("ROTI", "Roti", 1, 12000)],
                type=TransactionType.VOID,
                reverses="S-2",
            ),
            sale(
                "R-1",
                at=at(11),
                items=[("KOPI", "Es Kopi", 1, 18000)],
                type=TransactionType.REFUND,
                reverses="S-1",
            ),
            # The void of a sale from another day: that day is summed up already, so it counts
            # against this one.
            sale(
                "V-0",
                at=at(12),
                items=[("TEH", "Teh", 1, 8000)],
                type=TransactionType.VOID,
                reverses="S-0",
            ),
        ],
    )

    assert (summary.transactions, summary.refunds, summary.voids) == (1, 1, 2)
    assert summary.total == Decimal(18000 - 8000)
    assert [(line.sku, line.quantity, line.total) for line in summary.lines] == [
        ("KOPI", 1, 18000),
        ("TEH", -1, -8000),
    ]


def test_a_day_closes_at_the_configured_local_time() -> None:
    late = datetime(2026, 11, 20, 16, 40, tzinfo=UTC)  # 23:40 WIB
    assert latest_closed(late, JAKARTA, timedelta(hours=23, minutes=30)) == DAY
    assert latest_closed(late, JAKARTA, timedelta(hours=23, minutes=50)) == DAY - timedelta(1)
    # Past 24:00: a bar closing at two in the morning.
    assert latest_closed(late, JAKARTA, timedelta(hours=26)) == DAY - timedelta(1)


async def test_the_loop_summarises_closed_days_once_and_again_when_they_change(
    tmp_path: Path, sambung_store_url: str
) -> None:
    sink = {"type": "jsonl", "path": "out.jsonl", "kinds": ["daily_summary"]}
    # 47:00: a day closes at 23:00 the day after, so today is open whatever the hour.
    async with AccountingRig.start(
        tmp_path, sink, summary_after="47:00", store_url=sambung_store_url
    ) as rig:
        closed, today = days_ago(2, 9), days_ago(0, 0)
        await rig.ingest(
            sale("S-1", at=closed, items=[("KOPI", "Es Kopi", 2, 18000)]),
            sale("S-9", at=today, items=[("KOPI", "Es Kopi", 1, 18000)]),  # open: not yet
        )
        await rig.summarise()
        key = closed.date().isoformat()
        stored = await rig.store.get_record(OUTLET, "sambung", "daily_summary", f"{OUTLET}:{key}")
        assert stored is not None and stored.revision == 1
        assert [r.sink for r in await rig.store.list_outbox()] == [SINK]

        # A re-run changes nothing and queues nothing.
        await rig.summarise()
        assert len(await rig.store.list_outbox()) == 1

        # A late sale for the closed day: the same summary, a new revision, a new row.
        await rig.ingest(sale("S-2", at=closed, items=[("ROTI", "Roti", 1, 12000)]))
        await rig.summarise()
        again = await rig.store.get_record(OUTLET, "sambung", "daily_summary", f"{OUTLET}:{key}")
        assert again is not None and again.revision == 2
        assert DailySummary.model_validate_json(again.payload).total == Decimal(48000)
        rows = await rig.store.list_outbox()
        assert [(r.record_id, r.revision) for r in rows] == [(stored.id, 1), (stored.id, 2)]

        # Transactions go nowhere: the only sink takes summaries.
        assert all(json.loads(r.payload)["kind"] == "daily_summary" for r in rows)


async def test_a_day_is_summed_up_when_it_closes(tmp_path: Path, sambung_store_url: str) -> None:
    sink = {"type": "jsonl", "path": "out.jsonl", "kinds": ["daily_summary"]}
    async with AccountingRig.start(
        tmp_path, sink, summary_after="47:00", store_url=sambung_store_url
    ) as rig:
        await rig.ingest(sale("S-1", at=days_ago(0, 0, 5), items=[("KOPI", "Es Kopi", 1, 18000)]))
        await rig.summarise()
        assert await rig.store.list_outbox() == []

        rig.clock.advance(2 * 86400)  # past 23:00 tomorrow: today has closed
        await rig.summarise()
        [row] = await rig.store.list_outbox()
        assert json.loads(row.payload)["business_date"] == days_ago(0, 0).date().isoformat()


async def test_the_business_date_column_finds_a_days_records(
    tmp_path: Path, sambung_store_url: str
) -> None:
    sink = {"type": "jsonl", "path": "out.jsonl"}
    async with AccountingRig.start(tmp_path, sink, store_url=sambung_store_url) as rig:
        first, second = days_ago(3, 10), days_ago(1, 10)
        result = await rig.ingest(
            sale("A", at=first, items=[("K", "K", 1, 1000)]),
            sale("B", at=second, items=[("K", "K", 1, 1000)]),
        )
        assert [r.outcome for r in result.records] == [Outcome.INSERTED] * 2
        found = await rig.store.records_of_day(OUTLET, "transaction", first.date())
        assert [r.external_id for r in found] == ["A"]
        changed = await rig.store.changed_business_dates(
            OUTLET, "transaction", since=rig.clock.now() - timedelta(minutes=5)
        )
        assert set(changed) == {first.date(), second.date()}
        assert (
            await rig.store.changed_business_dates(
                OUTLET, "transaction", since=rig.clock.now() + timedelta(minutes=5)
            )
            == {}
        )


def test_summaries_go_only_to_sinks_that_ask_for_them(tmp_path: Path) -> None:
    import yaml
    from sambung.config import load_config
    from sambung.plugins import load_plugins

    document = {
        "outlets": [{"id": OUTLET, "name": "Kemang"}],
        "sinks": {
            "everything": {"type": "jsonl", "path": "a.jsonl"},
            "days": {"type": "jsonl", "path": "b.jsonl", "kinds": ["daily_summary"]},
        },
    }
    path = tmp_path / "sambung.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    loaded = load_config(path, load_plugins(frozenset()))

    # A catch-all sink does not start receiving summaries because another sink wants them.
    assert loaded.sinks_for(OUTLET, "daily_summary") == ("days",)
    assert loaded.sinks_for(OUTLET, "transaction") == ("everything",)
