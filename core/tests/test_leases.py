"""Leases in the store and the replica machinery built on them: take, renew, expire, takeover,
release, fencing, and `Store.exclusive`; and the outbox shared by two replicas on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sambung.errors import LeaseLost
from sambung.http import VendorHttp
from sambung.runtime.replicas import Replica, ensure_lease, held_lease
from sambung.store import CursorUpdate, IngestRequest, LeaseHold, Store, open_store
from sambung.store.base import OutboxSettlement
from sambung.testing.manual_clock import ManualClock

from .conftest import sale

NOW = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)


def later(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


async def test_a_free_lease_is_taken(store: Store) -> None:
    assert await store.acquire_or_renew_lease("poll:kemang/qasir", "a", ttl=15, now=NOW)

    [lease] = await store.list_leases()
    assert (lease.name, lease.owner) == ("poll:kemang/qasir", "a")
    assert lease.expires_at == later(15)
    assert lease.acquired_at == lease.renewed_at == NOW


async def test_the_owner_renews_and_keeps_its_acquired_time(store: Store) -> None:
    await store.acquire_or_renew_lease("poll:kemang/qasir", "a", ttl=15, now=NOW)
    assert await store.acquire_or_renew_lease("poll:kemang/qasir", "a", ttl=15, now=later(5))

    [lease] = await store.list_leases()
    assert lease.expires_at == later(20)
    assert lease.acquired_at == NOW and lease.renewed_at == later(5)


async def test_a_held_lease_is_refused_to_another_owner_until_it_expires(store: Store) -> None:
    await store.acquire_or_renew_lease("poll:kemang/qasir", "a", ttl=15, now=NOW)

    assert not await store.acquire_or_renew_lease("poll:kemang/qasir", "b", ttl=15, now=later(14))
    [lease] = await store.list_leases()
    assert lease.owner == "a" and lease.expires_at == later(15)


async def test_an_expired_lease_is_taken_over(store: Store) -> None:
    await store.acquire_or_renew_lease("poll:kemang/qasir", "a", ttl=15, now=NOW)

    assert await store.acquire_or_renew_lease("poll:kemang/qasir", "b", ttl=15, now=later(15))
    [lease] = await store.list_leases()
    assert lease.owner == "b"
    assert lease.acquired_at == later(15) and lease.expires_at == later(30)
    # The old owner's renewal now fails: this is what fences it.
    assert not await store.acquire_or_renew_lease("poll:kemang/qasir", "a", ttl=15, now=later(16))


async def test_release_frees_at_once_and_only_for_the_owner(store: Store) -> None:
    await store.acquire_or_renew_lease("poll:kemang/qasir", "a", ttl=15, now=NOW)

    assert not await store.release_lease("poll:kemang/qasir", "b")
    assert await store.release_lease("poll:kemang/qasir", "a")
    assert not await store.release_lease("poll:kemang/qasir", "a")
    assert await store.list_leases() == []
    assert await store.acquire_or_renew_lease("poll:kemang/qasir", "b", ttl=15, now=later(1))


async def test_leases_are_independent_and_listed_by_prefix(store: Store) -> None:
    await store.acquire_or_renew_lease("poll:kemang/qasir", "a", ttl=15, now=NOW)
    await store.acquire_or_renew_lease("poll:kemang/olsera", "b", ttl=15, now=NOW)
    await store.acquire_or_renew_lease("replica:a", "a", ttl=15, now=NOW)

    assert [lease.name for lease in await store.list_leases("poll:")] == [
        "poll:kemang/olsera",
        "poll:kemang/qasir",
    ]
    assert [lease.owner for lease in await store.list_leases("replica:")] == ["a"]


async def test_concurrent_takers_get_one_winner(store: Store) -> None:
    won = await asyncio.gather(
        *(store.acquire_or_renew_lease("inbox", f"r{i}", ttl=15, now=NOW) for i in range(8))
    )
    assert sum(won) == 1


async def test_exclusive_lets_one_holder_in_at_a_time(store: Store) -> None:
    inside, most = 0, 0

    async def refresh() -> None:
        nonlocal inside, most
        async with store.exclusive("credentials:kemang/accurate", poll=0.01):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.02)
            inside -= 1

    await asyncio.gather(*(refresh() for _ in range(5)))
    assert most == 1
    assert await store.list_leases("exclusive:") == []


async def test_exclusive_gives_up_after_waiting(store: Store) -> None:
    await store.acquire_or_renew_lease(
        "exclusive:credentials", "someone", ttl=60, now=datetime.now(UTC)
    )
    with pytest.raises(TimeoutError):
        async with store.exclusive("credentials", wait=0.2, poll=0.02):
            pass


class Work:
    """A loop body that records whether it runs, and how many copies run at once."""

    running = 0
    most = 0

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.stopped = asyncio.Event()
        self.stopped_at: datetime | None = None

    async def __call__(self) -> None:
        Work.running += 1
        Work.most = max(Work.most, Work.running)
        self.started.set()
        try:
            await asyncio.Event().wait()
        finally:
            Work.running -= 1
            self.stopped_at = datetime.now(UTC)
            self.stopped.set()


async def _within(event: asyncio.Event, seconds: float = 20.0) -> None:
    await asyncio.wait_for(event.wait(), seconds)


async def test_one_replica_runs_a_loop_and_a_clean_shutdown_hands_it_over(store: Store) -> None:
    Work.running = Work.most = 0
    one, two = Replica(store, "one", ttl=0.6), Replica(store, "two", ttl=0.6)
    work_one, work_two = Work(), Work()
    first = asyncio.create_task(one.own("poll:kemang/qasir", work_one))
    await _within(work_one.started)
    second = asyncio.create_task(two.own("poll:kemang/qasir", work_two))
    # Two renewal periods of `one` pass: `two` keeps waiting.
    await asyncio.sleep(0.5)
    assert not work_two.started.is_set()

    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    assert work_one.stopped.is_set()
    await _within(work_two.started)
    [lease] = await store.list_leases()
    assert lease.owner == "two"
    second.cancel()
    await asyncio.gather(second, return_exceptions=True)
    assert Work.most == 1
    assert await store.list_leases() == []


async def test_a_replica_that_loses_its_lease_stops_the_loop(store: Store) -> None:
    Work.running = Work.most = 0
    one = Replica(store, "one", ttl=0.6)
    work = Work()
    task = asyncio.create_task(one.own("poll:kemang/qasir", work))
    await _within(work.started)
    # Another replica, seeing the lease expired (say `one` was paused), takes it.
    assert await store.acquire_or_renew_lease(
        "poll:kemang/qasir", "two", ttl=60, now=datetime.now(UTC) + timedelta(seconds=5)
    )

    await _within(work.stopped)
    assert "poll:kemang/qasir" not in one.owned
    [lease] = await store.list_leases()
    assert lease.owner == "two"  # `one` releasing did not free another's lease
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_replica_that_cannot_renew_stops_the_loop_before_its_lease_ends(
    store: Store,
) -> None:
    Work.running = Work.most = 0
    one = Replica(store, "one", ttl=0.6)
    work = Work()
    task = asyncio.create_task(one.own("poll:kemang/qasir", work))
    await _within(work.started)
    [held] = await store.list_leases("poll:")
    await store.close()  # every renewal now fails

    await _within(work.stopped)
    # Fenced: stopped while the lease it last renewed still held, so no other replica could
    # have started the loop yet (a renewal during close only moves that expiry later).
    assert work.stopped_at is not None and work.stopped_at < held.expires_at
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_crashing_loop_releases_its_lease_and_raises(store: Store) -> None:
    async def broken() -> None:
        raise RuntimeError("connector bug")

    with pytest.raises(RuntimeError, match="connector bug"):
        await Replica(store, "one", ttl=0.6).own("poll:kemang/qasir", broken)
    assert await store.list_leases() == []


# -- the outbox shared by replicas (PostgreSQL) ------------------------------------------------


async def _replica_stores(url: str, *owners: str) -> list[Store]:
    stores = [open_store(url, base_dir=Path("."), owner=owner) for owner in owners]
    for opened in stores:
        await opened.open()
    return stores


async def _owners(url: str, tmp_path: Path, clock: ManualClock, *owners: str) -> list[Store]:
    """One store per owner on the same database (SQLite file or PostgreSQL schema)."""
    stores = [open_store(url, base_dir=tmp_path, owner=owner, clock=clock) for owner in owners]
    for opened in stores:
        await opened.open()
    return stores


async def test_a_renewed_claim_never_passes_on_and_an_expired_one_does(
    sambung_store_url: str, tmp_path: Path, clock: ManualClock
) -> None:
    one, two = await _owners(sambung_store_url, tmp_path, clock, "one", "two")
    try:
        await one.ingest(IngestRequest(records=[sale()], routes=[["backend"]]))
        clock.advance(1)
        [row] = await one.claim_outbox("backend", now=clock.now(), limit=10, lease_seconds=15)
        for _ in range(4):  # `one` is alive and renews: its claim never passes on
            clock.advance(10)
            assert (
                await two.claim_outbox("backend", now=clock.now(), limit=10, lease_seconds=15) == []
            )
            renewed = await one.renew_claims([row.id], now=clock.now(), lease_seconds=15)
            assert renewed == {row.id}
        clock.advance(16)  # `one` stopped renewing (dead, frozen or cut off): it passes on
        [again] = await two.claim_outbox("backend", now=clock.now(), limit=10, lease_seconds=15)
        assert (again.id, again.idempotency_key) == (row.id, row.idempotency_key)
        # The old holder learns it lost the claim, and nothing it settles counts.
        assert await one.renew_claims([row.id], now=clock.now(), lease_seconds=15) == set()
        await one.settle_outbox([OutboxSettlement(row.id, "delivered")], now=clock.now())
        dead = OutboxSettlement(row.id, "dead", error="gave up", error_type="RetriesExhausted")
        assert await one.settle_outbox([dead], now=clock.now()) == []
        [pending] = await two.list_outbox()
        assert pending.status == "pending" and pending.attempts == 0
        await two.settle_outbox([OutboxSettlement(row.id, "delivered")], now=clock.now())
        [done] = await two.list_outbox()
        assert done.status == "delivered" and done.attempts == 1
    finally:
        await one.close()
        await two.close()


async def test_a_write_fenced_by_a_lease_commits_only_while_the_lease_is_held(
    store: Store, clock: ManualClock
) -> None:
    name = "poll:kemang/qasir"
    assert await store.acquire_or_renew_lease(name, "one", ttl=15, now=clock.now())
    held = LeaseHold(name, "one")
    cursor = CursorUpdate("kemang", "qasir", "2026-11-27T01:00:00+00:00")
    await store.ingest(IngestRequest(records=[sale("P-1")], routes=[[]], cursor=cursor, lease=held))
    assert await store.get_cursor("kemang", "qasir") == cursor.value

    # Frozen past its lease: nothing of its page commits, neither records nor the cursor,
    # whether another replica took the lease over or nobody did yet.
    clock.advance(16)
    moved = CursorUpdate("kemang", "qasir", "2026-11-27T02:00:00+00:00")
    stale = IngestRequest(records=[sale("P-2")], routes=[[]], cursor=moved, lease=held)
    with pytest.raises(LeaseLost):
        await store.ingest(stale)
    assert await store.acquire_or_renew_lease(name, "two", ttl=15, now=clock.now())
    # Beside others in one group commit, only the fenced request fails.
    results = await asyncio.gather(
        store.ingest(stale),
        store.ingest(IngestRequest(records=[sale("W-1")], routes=[[]])),
        return_exceptions=True,
    )
    assert isinstance(results[0], LeaseLost) and not isinstance(results[1], BaseException)
    assert await store.get_cursor("kemang", "qasir") == cursor.value
    ids = {r.external_id for r in await store.list_records()}
    assert ids == {"P-1", "W-1"}
    # The new holder's fenced writes commit.
    fresh = IngestRequest(records=[sale("P-3")], cursor=moved, lease=LeaseHold(name, "two"))
    await store.ingest(fresh)
    assert await store.get_cursor("kemang", "qasir") == moved.value


async def test_two_replicas_claiming_at_once_deliver_each_row_once_and_in_record_order(
    postgres_url: str,
) -> None:
    one, two = await _replica_stores(postgres_url, "one", "two")
    records, revisions = 40, 3
    try:
        for revision in range(revisions):
            batch = [sale(f"TRX-{n}", total=str(1000 + revision)) for n in range(records)]
            await one.ingest(IngestRequest(records=batch, routes=[["backend"]] * records))
        in_flight: set[int] = set()
        delivered: list[tuple[str, int, int, int]] = []  # (owner, row id, record id, revision)

        async def dispatch(store: Store, owner: str) -> None:
            idle = 0
            while idle < 5:
                now = datetime.now(UTC)
                rows = await store.claim_outbox("backend", now=now, limit=7, lease_seconds=300)
                idle = 0 if rows else idle + 1
                assert not in_flight & {row.id for row in rows}, "a row claimed twice at once"
                in_flight.update(row.id for row in rows)
                await asyncio.sleep(0.001)
                delivered.extend((owner, r.id, r.record_id, r.revision) for r in rows)
                in_flight.difference_update(row.id for row in rows)
                settled = [OutboxSettlement(row.id, "delivered") for row in rows]
                await store.settle_outbox(settled, now=now)
                await asyncio.sleep(0.005 if not rows else 0)

        await asyncio.gather(dispatch(one, "one"), dispatch(two, "two"))

        assert len(delivered) == records * revisions
        assert len({row_id for _, row_id, _, _ in delivered}) == records * revisions
        assert {owner for owner, *_ in delivered} == {"one", "two"}
        by_record: dict[int, list[int]] = {}
        for _, _, record_id, revision in delivered:
            by_record.setdefault(record_id, []).append(revision)
        assert all(found == [1, 2, 3] for found in by_record.values())
    finally:
        await one.close()
        await two.close()


async def test_a_starting_replica_forgets_replicas_dead_for_an_hour(store: Store) -> None:
    long_ago = datetime.now(UTC) - timedelta(hours=2)
    await store.acquire_or_renew_lease("replica:gone", "gone", ttl=15, now=long_ago)
    await store.acquire_or_renew_lease("replica:recent", "recent", ttl=15, now=datetime.now(UTC))
    started: list[str] = []
    replica = Replica(store, "new", ttl=0.6)

    await replica.start(lambda name, *_args, **_kw: started.append(name))

    assert started == ["replica.heartbeat"]
    names = [lease.name for lease in await store.list_leases("replica:")]
    # One process at a time uses a SQLite store: there "recent" died too (see the next test).
    assert names == (["replica:new"] if store.single_process else ["replica:new", "replica:recent"])


async def test_a_daemon_starting_on_a_single_process_store_frees_a_killed_daemons_leases(
    store: Store,
) -> None:
    """A SIGKILLed daemon's loops resume at once on restart, not when its leases expire; on a
    shared store they are another live replica's until they do. A command's lease (no
    heartbeat: a token refresh by `sambung connect`) is never taken from it."""
    now = datetime.now(UTC)
    for name in ("replica:killed", "loop:kemang/qasir", "sink:books"):
        await store.acquire_or_renew_lease(name, "killed", ttl=15, now=now)
    await store.acquire_or_renew_lease("credentials:kemang/qasir", "local", ttl=15, now=now)
    replica = Replica(store, "restarted", ttl=15)

    await replica.start(lambda *_args, **_kw: None)

    held = {lease.name: lease.owner for lease in await store.list_leases()}
    if store.single_process:
        assert held == {"credentials:kemang/qasir": "local", "replica:restarted": "restarted"}
        assert await replica._acquire("loop:kemang/qasir") is True
    else:
        assert held["loop:kemang/qasir"] == "killed" and held["replica:killed"] == "killed"
        assert await replica._acquire("loop:kemang/qasir") is False


async def test_work_that_finds_its_lease_gone_stops_as_lease_lost_and_the_replica_waits_again(
    store: Store,
) -> None:
    replica = Replica(store, "one", ttl=0.6)
    seen: list[LeaseHold | None] = []

    async def poller() -> None:
        seen.append(held_lease())
        if len(seen) == 1:  # its page commit was refused: the lease was no longer its own
            raise LeaseLost("lease poll:kemang/qasir is no longer held by one")
        await asyncio.Event().wait()

    task = asyncio.create_task(replica.own("poll:kemang/qasir", poller))
    try:
        await _within_condition(lambda: len(seen) == 2)  # not a crash: it went back for it
        assert seen == [LeaseHold("poll:kemang/qasir", "one")] * 2
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert held_lease() is None  # outside the work there is no lease


async def test_work_thawed_after_its_lease_could_pass_on_may_not_start_anything(
    store: Store,
) -> None:
    now = [100.0]
    replica = Replica(store, "one", ttl=3.0, monotonic=lambda: now[0])
    checked: list[BaseException | None] = []
    go = asyncio.Event()

    async def poller() -> None:
        ensure_lease()  # held: fine
        await go.wait()
        try:
            ensure_lease()
        except LeaseLost as err:
            checked.append(err)
            raise
        checked.append(None)

    task = asyncio.create_task(replica.own("poll:kemang/qasir", poller))
    try:
        await _within_condition(lambda: bool(replica.owned))
        now[0] += 2.5  # frozen past the fence (two thirds of a ttl), its renewals not yet run
        go.set()
        await _within_condition(lambda: bool(checked))
        assert isinstance(checked[0], LeaseLost)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_request_waiting_for_its_budget_when_the_lease_may_pass_on_is_never_sent(
    store: Store,
) -> None:
    # The window a check before each page leaves open: the process freezes while a request
    # waits for the account's budget; thawed, the request must not leave.
    now = [100.0]
    replica = Replica(store, "one", ttl=3.0, monotonic=lambda: now[0])
    reached: list[str] = []
    budget_free = asyncio.Event()

    async def vendor(request: web.Request) -> web.Response:
        reached.append(request.path)
        return web.json_response({"data": []})

    app = web.Application()
    app.router.add_get("/sales", vendor)
    server = TestServer(app)
    await server.start_server()
    outcome: list[BaseException | None] = []
    try:
        async with aiohttp.ClientSession() as session:
            http = VendorHttp(session, fence=ensure_lease)

            async def poller() -> None:
                if outcome:  # the replica takes its lease again afterwards: nothing more to do
                    await asyncio.Event().wait()
                await http.get(str(server.make_url("/sales")))  # held: sent
                await budget_free.wait()  # frozen here, as in a budget wait
                try:
                    await http.get(str(server.make_url("/sales")))
                except LeaseLost as err:
                    outcome.append(err)
                    raise
                outcome.append(None)

            task = asyncio.create_task(replica.own("poll:kemang/qasir", poller))
            try:
                await _within_condition(lambda: reached == ["/sales"])
                now[0] += 2.5  # past the fence, its renewals not yet run
                budget_free.set()
                await _within_condition(lambda: bool(outcome))
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
    finally:
        await server.close()
    assert isinstance(outcome[0], LeaseLost)
    assert reached == ["/sales"], "the thawed request reached the vendor"


async def test_a_replica_shut_down_while_its_lease_is_being_granted_releases_it(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    granted = asyncio.Event()
    grant = store.acquire_or_renew_lease

    async def granted_then_slow(name: str, owner: str, *, ttl: float, now: datetime) -> bool:
        got = await grant(name, owner, ttl=ttl, now=now)
        granted.set()
        await asyncio.Event().wait()  # the answer is slow to come back: shutdown comes first
        return got

    monkeypatch.setattr(store, "acquire_or_renew_lease", granted_then_slow)
    replica = Replica(store, "one", ttl=30.0)
    task = asyncio.create_task(replica.own("poll:kemang/qasir", asyncio.Event().wait))
    await asyncio.wait_for(granted.wait(), 10)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert await store.list_leases("poll:") == []


async def _within_condition(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.01)
