"""The webhook gap report and alert transitions, on both stores (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from pathlib import Path

from sambung.store import AlertCondition, IngestRequest, RawEvent, Store, open_store
from sambung.testing.manual_clock import ManualClock

from .conftest import sale

DAY = date(2026, 11, 26)  # the business date of `sale()`
KEMANG = {("kemang", "pawoon")}


def webhook(key: str, clock: ManualClock) -> RawEvent:
    return RawEvent("kemang", "pawoon", "webhook", key, b"{}", clock.now())


async def by_webhook(store: Store, clock: ManualClock, *external_ids: str) -> None:
    for external_id in external_ids:
        await store.ingest(
            IngestRequest(raw=webhook(external_id, clock), records=[sale(external_id)])
        )


async def by_poll(store: Store, *external_ids: str) -> None:
    await store.ingest(IngestRequest(records=[sale(e) for e in external_ids]))


# -- gap report --------------------------------------------------------------------------------


async def test_records_no_webhook_delivered_are_counted_per_day(
    store: Store, clock: ManualClock
) -> None:
    await by_webhook(store, clock, "T1", "T2")
    await by_poll(store, "T1", "T2", "T3", "T4")  # T1, T2 again (unchanged), T3 and T4 new

    [day] = await store.webhook_gaps(KEMANG)

    assert (day.outlet, day.connector, day.business_date) == ("kemang", "pawoon", DAY)
    assert (day.poll_only, day.total) == (2, 4)


async def test_a_late_webhook_is_no_loss(store: Store, clock: ManualClock) -> None:
    await by_poll(store, "T1", "T2")
    await by_webhook(store, clock, "T1")  # same content: the record itself is unchanged

    [day] = await store.webhook_gaps(KEMANG)

    assert (day.poll_only, day.total) == (1, 2)


async def test_a_webhook_with_new_content_after_a_poll_counts_too(
    store: Store, clock: ManualClock
) -> None:
    await by_poll(store, "T1")
    await store.ingest(IngestRequest(raw=webhook("w", clock), records=[sale("T1", total="9")]))

    [day] = await store.webhook_gaps(KEMANG)

    assert day.poll_only == 0


async def test_a_webhook_and_a_poll_of_one_record_in_one_group_is_no_loss(
    store: Store, clock: ManualClock
) -> None:
    await asyncio.gather(by_poll(store, "T1"), by_webhook(store, clock, "T1"), by_poll(store, "T1"))

    [day] = await store.webhook_gaps(KEMANG)

    assert day.poll_only == 0


async def test_gaps_filter_by_connection_outlet_day_and_age(
    store: Store, clock: ManualClock
) -> None:
    await by_poll(store, "T1")
    first_stored = clock.now()
    clock.advance(600)
    await by_poll(store, "T2")

    assert await store.webhook_gaps({("kemang", "moka")}) == []
    assert await store.webhook_gaps(KEMANG, outlet="blok-m") == []
    assert await store.webhook_gaps(KEMANG, since=DAY + timedelta(days=1)) == []
    [day] = await store.webhook_gaps(KEMANG, since=DAY)
    assert day.poll_only == 2
    # Only T2 was first stored in the span.
    span = (first_stored + timedelta(seconds=1), clock.now() + timedelta(seconds=1))
    [recent] = await store.webhook_gaps(KEMANG, stored_between=span)
    assert (recent.poll_only, recent.total) == (1, 1)
    assert await store.webhook_gaps(KEMANG, stored_between=(first_stored, first_stored)) == []


# -- alert transitions -------------------------------------------------------------------------


def failing(subject: str = "kemang/pawoon", message: str = "vendor answered 500") -> AlertCondition:
    return AlertCondition("connection_failing", subject, message)


async def test_an_alert_fires_once_while_it_holds_and_recovers_once(
    store: Store, clock: ManualClock
) -> None:
    rules = ["connection_failing"]
    fired = await store.apply_alert_conditions(
        rules, [failing()], channels=["ops"], now=clock.now()
    )
    for _ in range(2):
        clock.advance(60)
        assert (
            await store.apply_alert_conditions(
                rules, [failing()], channels=["ops"], now=clock.now()
            )
            == []
        )
    clock.advance(60)
    recovered = await store.apply_alert_conditions(rules, [], channels=["ops"], now=clock.now())
    again = await store.apply_alert_conditions(rules, [], channels=["ops"], now=clock.now())

    assert [t.transition for t in fired] == ["fired"]
    assert [t.transition for t in recovered] == ["recovered"]
    assert recovered[0].alert.id == fired[0].alert.id
    assert recovered[0].alert.recovered_at == clock.now()
    assert again == []
    [alert] = await store.list_alerts()
    assert alert.recovered_at is not None
    assert await store.list_alerts(open_only=True) == []


async def test_a_rule_not_evaluated_leaves_its_alerts_open(
    store: Store, clock: ManualClock
) -> None:
    await store.apply_alert_conditions(
        ["connection_failing"], [failing()], channels=[], now=clock.now()
    )

    assert (
        await store.apply_alert_conditions(["sink_paused"], [], channels=[], now=clock.now()) == []
    )
    [alert] = await store.list_alerts(open_only=True)
    assert alert.subject == "kemang/pawoon"


async def test_a_recurring_condition_opens_a_new_episode(store: Store, clock: ManualClock) -> None:
    rules = ["connection_failing"]
    for active in ([failing()], [], [failing()]):
        clock.advance(60)
        await store.apply_alert_conditions(rules, active, channels=[], now=clock.now())

    opened = await store.list_alerts()
    assert [a.recovered_at is None for a in opened] == [True, False]  # newest first
    recent = await store.list_alerts(since=clock.now() - timedelta(seconds=30))
    assert [a.id for a in recent] == [opened[0].id]


async def test_alert_messages_are_masked(store: Store, clock: ManualClock) -> None:
    from sambung.redaction import secrets

    secrets.configure(("s3cr3t-token-value",))
    try:
        condition = failing(message="401 for token s3cr3t-token-value")
        await store.apply_alert_conditions(
            ["connection_failing"], [condition], channels=[], now=clock.now()
        )
        [alert] = await store.list_alerts()
    finally:
        secrets.configure(())
    assert "s3cr3t" not in alert.message


async def test_notices_are_claimed_once_retried_after_a_failure_and_sent_once(
    sambung_store_url: str, tmp_path: Path, clock: ManualClock
) -> None:
    one, two = await owners(sambung_store_url, tmp_path, clock, "one", "two")
    try:
        await one.apply_alert_conditions(
            ["connection_failing"], [failing()], channels=["ops", "mail"], now=clock.now()
        )
        claimed = await one.claim_alert_notices(now=clock.now(), limit=10, lease_seconds=30)
        assert sorted(n.channel for n in claimed) == ["mail", "ops"]
        assert await two.claim_alert_notices(now=clock.now(), limit=10, lease_seconds=30) == []
        ops = next(n for n in claimed if n.channel == "ops")
        mail = next(n for n in claimed if n.channel == "mail")
        assert await one.settle_alert_notice(ops.id, now=clock.now())
        retry_at = clock.now() + timedelta(seconds=20)
        assert await one.settle_alert_notice(
            mail.id, now=clock.now(), error="smtp down", retry_at=retry_at
        )
        assert await two.claim_alert_notices(now=clock.now(), limit=10, lease_seconds=30) == []
        clock.advance(21)
        [retried] = await two.claim_alert_notices(now=clock.now(), limit=10, lease_seconds=30)
        assert (retried.id, retried.attempts, retried.transition) == (mail.id, 1, "fired")
        assert not await one.settle_alert_notice(retried.id, now=clock.now())  # not its claim
        assert await two.settle_alert_notice(retried.id, now=clock.now())
        clock.advance(3600)
        assert await one.claim_alert_notices(now=clock.now(), limit=10, lease_seconds=30) == []
    finally:
        await one.close()
        await two.close()


async def test_an_expired_claim_passes_to_another_owner(
    sambung_store_url: str, tmp_path: Path, clock: ManualClock
) -> None:
    one, two = await owners(sambung_store_url, tmp_path, clock, "one", "two")
    try:
        await one.apply_alert_conditions(
            ["connection_failing"], [failing()], channels=["ops"], now=clock.now()
        )
        [first] = await one.claim_alert_notices(now=clock.now(), limit=10, lease_seconds=30)
        clock.advance(31)  # `one` died while sending
        [taken] = await two.claim_alert_notices(now=clock.now(), limit=10, lease_seconds=30)
        assert taken.id == first.id
    finally:
        await one.close()
        await two.close()


async def test_two_evaluators_racing_open_and_recover_each_alert_once(
    sambung_store_url: str, tmp_path: Path, clock: ManualClock
) -> None:
    stores = await owners(sambung_store_url, tmp_path, clock, *(f"r{n}" for n in range(4)))
    rules = ["connection_failing"]
    conditions = [failing(f"kemang/c{n}") for n in range(5)]
    try:
        for active in (conditions, [], conditions):
            results = await asyncio.gather(
                *(
                    s.apply_alert_conditions(rules, active, channels=["ops"], now=clock.now())
                    for s in stores
                )
            )
            transitions = [t for result in results for t in result]
            assert sorted(t.alert.subject for t in transitions) == sorted(
                c.subject for c in conditions
            )
            clock.advance(60)
        notices = []
        while batch := await stores[0].claim_alert_notices(
            now=clock.now(), limit=100, lease_seconds=30
        ):
            notices += batch
            for notice in batch:
                await stores[0].settle_alert_notice(notice.id, now=clock.now())
        assert len(notices) == 15  # five alerts: fired, recovered, fired again; one channel
    finally:
        for s in stores:
            await s.close()


async def owners(url: str, tmp_path: Path, clock: ManualClock, *names: str) -> list[Store]:
    """One store per owner on the same database (SQLite file or PostgreSQL schema)."""
    stores = [open_store(url, base_dir=tmp_path, owner=name, clock=clock) for name in names]
    for opened in stores:
        await opened.open()
    return stores
