"""Leases in the store and the replica machinery built on them: take, renew, expire, takeover,
release, fencing, and `Store.exclusive`."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sambung.replicas import Replica
from sambung.store import Store

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

    async def __call__(self) -> None:
        Work.running += 1
        Work.most = max(Work.most, Work.running)
        self.started.set()
        try:
            await asyncio.Event().wait()
        finally:
            Work.running -= 1
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
    await store.close()  # every renewal now fails

    await _within(work.stopped)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_crashing_loop_releases_its_lease_and_raises(store: Store) -> None:
    async def broken() -> None:
        raise RuntimeError("connector bug")

    with pytest.raises(RuntimeError, match="connector bug"):
        await Replica(store, "one", ttl=0.6).own("poll:kemang/qasir", broken)
    assert await store.list_leases() == []
