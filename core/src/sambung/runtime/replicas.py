"""Replicas: several daemons on one shared store, each poll loop and inbox owned by one of them.

Webhooks may land on any replica: ingest keeps no state in the process (deduplication is the
store's unique keys). Work that must not run twice at once — a poll loop, a file-drop inbox —
runs only while its replica holds the loop's lease in the store (`poll:OUTLET/CONNECTOR`,
`filedrop:OUTLET/CONNECTOR`). The holder renews every `ttl / 3`; a replica that cannot renew
stops the loop (fencing) at least `ttl / 3` before the lease could pass to another, and one that
finds the lease taken waits until it expires. A replica that dies is thus replaced within about
one ttl; one that shuts down releases its leases so a restart (or another replica) takes over at
once. Each replica also holds `replica:ID` as a heartbeat, which status lists as the live
replicas (outbox claims expire on their own unless renewed: see `outbox`).

Stopping in time is not enough for a process that was frozen (SIGSTOP, a VM paused) while its
lease passed on: it resumes mid-run, unaware. So work under a lease can fence its writes too:
`held_lease()` names the lease the calling task runs under, and a write carrying it
(`IngestRequest.lease`) commits only if the store finds the lease still this replica's, in the
same transaction; otherwise it raises `LeaseLost`, and `own` stops the work (`lease.lost`).

On SQLite (one process) the same code runs and simply always wins its leases; a starting
daemon first frees the leases a killed one left, instead of waiting for them to expire.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

import structlog

from sambung.clock import Clock, SystemClock
from sambung.errors import LeaseLost, StoreUnavailable
from sambung.store import LeaseHold, LeaseStore

from . import supervision

log = structlog.get_logger(__name__)

Work = Callable[[], Awaitable[None]]
HEARTBEAT_PREFIX = "replica:"
FORGET_AFTER = timedelta(hours=1)
# The longest a lease release may take before it is left to expire on its own (seconds).
RELEASE_TIMEOUT = 5.0


class _Held:
    """A lease some work runs under, and until when (this process's monotonic time) it may
    act on it: a third of a ttl before the lease could pass on, moved by every renewal."""

    def __init__(self, lease: LeaseHold, fence_at: float, monotonic: Callable[[], float]):
        self.lease = lease
        self.fence_at = fence_at
        self.monotonic = monotonic


_held: contextvars.ContextVar[_Held | None] = contextvars.ContextVar("sambung_lease", default=None)


async def _call(work: Work) -> None:
    await work()


def held_lease() -> LeaseHold | None:
    """The lease the calling task's work runs under (`Replica.own`), to fence its writes."""
    held = _held.get()
    return held.lease if held is not None else None


def ensure_lease() -> None:
    """Raise `LeaseLost` if the lease the calling task's work runs under may have passed on by
    now (the process was frozen, say): checked before work only the holder may start, such as
    a request to the vendor of a poll loop. A no-op outside leased work."""
    held = _held.get()
    if held is not None and held.monotonic() >= held.fence_at:
        raise LeaseLost(f"lease {held.lease.name} may have passed on: not renewed in time")


def default_replica_id() -> str:
    """hostname-pid-random: unique per process, readable in `sambung status`."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Replica:
    """This daemon as one of several replicas sharing a store: runs work under leases."""

    def __init__(
        self,
        store: LeaseStore,
        identity: str | None = None,
        *,
        ttl: float = 15.0,
        clock: Clock | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.id = identity or default_replica_id()
        self.ttl = ttl
        self.clock = clock or SystemClock()
        self.monotonic = monotonic
        # Renewed three times per ttl: two renewals may fail before the loop is fenced.
        self.renew_every = ttl / 3
        self.log = log.bind(replica=self.id)
        self.owned: set[str] = set()
        self._failing = False

    async def _acquire(self, name: str) -> bool | None:
        """True if held until `ttl` from now, False if another holds it, None if unknown."""
        try:
            async with asyncio.timeout(self.renew_every):
                got = await self.store.acquire_or_renew_lease(
                    name, self.id, ttl=self.ttl, now=self.clock.now()
                )
        except (StoreUnavailable, TimeoutError) as err:
            if not self._failing:  # once when leases start failing, not per lease per try
                self.log.warning("lease.store_unavailable", lease=name, error=str(err))
            self._failing = True
            return None
        if self._failing:
            self._failing = False
            self.log.info("lease.store_recovered", lease=name)
        return got

    async def _release(self, name: str) -> None:
        self.owned.discard(name)
        try:
            # Not bounded by a short ttl's renewal period: on a busy database a release at
            # shutdown may take a second, and one left behind holds the loop from every replica.
            async with asyncio.timeout(max(self.renew_every, RELEASE_TIMEOUT)):
                await self.store.release_lease(name, self.id)
        except (StoreUnavailable, TimeoutError) as err:  # it expires on its own
            self.log.warning("lease.not_released", lease=name, error=str(err))

    async def start(self, start_loop: Callable[..., None]) -> None:
        """Take the heartbeat lease now (claims made from here on belong to a live replica),
        then keep renewing it in a supervised loop (`daemon.loops.start`)."""
        if self.store.single_process:
            await self._free_leases_of_dead_processes()
        await self._acquire(HEARTBEAT_PREFIX + self.id)
        start_loop("replica.heartbeat", self.heartbeat, interval=self.renew_every, replica=self.id)
        self.log.info("replica.started", ttl=self.ttl)
        await self._forget_dead_replicas()

    async def _free_leases_of_dead_processes(self) -> None:
        """Release every lease of another daemon: on a single-process store that daemon died
        (SIGKILL, power loss), and its loops resume now rather than when its leases expire.

        Daemons are the owners with a heartbeat lease; a command's lease (a token refresh by
        `sambung connect`, say) is left to run out, as it may be in use right now.
        """
        try:
            leases = await self.store.list_leases()
            daemons = {lease.owner for lease in leases if lease.name.startswith(HEARTBEAT_PREFIX)}
            leases = [lease for lease in leases if lease.owner in daemons - {self.id}]
            for lease in leases:
                await self.store.release_lease(lease.name, lease.owner)
        except StoreUnavailable as err:  # they expire on their own
            self.log.warning("replica.cleanup_failed", error=str(err))
            return
        if leases:
            self.log.warning("replica.leases_released", leases=len(leases), hint="after a crash")

    async def _forget_dead_replicas(self) -> None:
        """Drop the heartbeats of replicas gone for an hour (killed ones leave theirs), so
        status lists the living; each new process has a new id, so they would pile up."""
        long_ago = self.clock.now() - FORGET_AFTER
        try:
            for lease in await self.store.list_leases(HEARTBEAT_PREFIX):
                if lease.expires_at < long_ago:
                    await self.store.release_lease(lease.name, lease.owner)
        except StoreUnavailable as err:
            self.log.warning("replica.cleanup_failed", error=str(err))

    async def heartbeat(self) -> None:
        """Hold `replica:ID` for as long as this daemon runs (released when cancelled)."""
        name = HEARTBEAT_PREFIX + self.id
        try:
            while True:
                if await self._acquire(name) is None:
                    supervision.failing("cannot renew the replica heartbeat: store unavailable")
                else:
                    supervision.cycle_done()
                await asyncio.sleep(self.renew_every)
        finally:
            await self._release(name)

    async def own(self, name: str, work: Work) -> None:
        """Run `work()` whenever this replica holds lease `name`, until cancelled.

        Waits while another replica holds the lease; cancels `work` when the lease is lost or
        cannot be renewed in time; releases the lease when cancelled (shutdown). An exception
        from `work` is raised after the lease is released, for the supervisor to restart.
        """
        bound = self.log.bind(lease=name)
        while True:
            started = self.monotonic()
            try:
                got = await self._acquire(name)
            except asyncio.CancelledError:
                # Shut down while asking: the store may have granted it just before the cancel,
                # and a lease left behind would keep the loop from every replica for a ttl.
                await self._release(name)
                raise
            if not got:
                if got is None:
                    supervision.failing(f"cannot take lease {name}: store unavailable")
                else:  # another replica runs it: waiting is this loop's work here
                    supervision.cycle_done()
                await asyncio.sleep(await self._until_free(name) if got is False else 1.0)
                continue
            bound.info("lease.acquired", ttl=self.ttl)
            supervision.cycle_done()  # it reaches the store again: no longer failing
            self.owned.add(name)
            # The work's task (and what it starts) sees the lease it runs under.
            held = _Held(LeaseHold(name, self.id), started + self.ttl * 2 / 3, self.monotonic)
            context = contextvars.copy_context()
            context.run(_held.set, held)
            task = asyncio.get_running_loop().create_task(_call(work), context=context)
            try:
                await self._hold(name, task, held)
            finally:
                if not task.done():
                    task.cancel()
                # Wait for the work to unwind: nothing of it may run once the lease can pass.
                await asyncio.gather(task, return_exceptions=True)
                await self._release(name)
            if not task.cancelled():  # the work ended by itself: crashed, or returned
                error = task.exception()
                if isinstance(error, LeaseLost):  # a fenced write found the lease gone
                    bound.warning(
                        "lease.lost", hint="another replica took it over", error=str(error)
                    )
                    continue
                if error is not None:
                    raise error
                return

    async def _hold(self, name: str, task: asyncio.Future[None], held: _Held) -> None:
        """Renew while `task` runs; return when it ends or when the lease must be given up."""
        # Fencing: stop a third of a ttl before the lease could expire in the store, leaving
        # time for the work to unwind before another replica may start it.
        margin = self.ttl / 3
        valid_until = held.fence_at + margin
        wait = self.renew_every
        while True:
            await asyncio.wait({task}, timeout=wait)
            if task.done():
                return
            started = self.monotonic()
            got = await self._acquire(name)
            if got:
                valid_until, wait = started + self.ttl, self.renew_every
                held.fence_at = valid_until - margin
                continue
            if got is False:
                self.log.warning("lease.lost", lease=name, hint="another replica took it over")
                return
            if self.monotonic() >= valid_until - margin:
                self.log.warning("lease.fenced", lease=name, hint="could not renew in time")
                return
            wait = max(0.05, min(self.ttl / 10, valid_until - margin - self.monotonic()))

    async def _until_free(self, name: str) -> float:
        """Seconds to wait before trying a held lease again: until it expires, at most ttl/3."""
        try:
            found = [lease for lease in await self.store.list_leases(name) if lease.name == name]
        except StoreUnavailable:
            found = []
        if not found:
            return self.renew_every
        left = (found[0].expires_at - self.clock.now()).total_seconds()
        return max(0.05, min(self.renew_every, left + 0.05))
