"""The outbox dispatcher: claims due rows, hands them to their sink, and settles each result.

Every sink runs its own supervised loop: claim a batch (a lease, so a crash re-delivers with the
same webhook-id), deliver it with at most `concurrency` calls in flight, then commit what each
item's result decided in one transaction. Delivery is at least once; receivers deduplicate on
the id. Versions of one record go out in order because the store only hands out the oldest
pending revision of each record.

Claims expire after `lease_seconds` unless renewed, and another replica takes over only
expired claims. While a batch is out its claims are renewed every third of that; a batch whose
claims could not be renewed in time is fenced a third of a lease before they can pass on: no
send of it starts after that, and sends still in flight are cut off, so one webhook-id is never
in flight from two replicas at once. The settle checks in its own transaction that each claim
is still this replica's; rows whose claim passed on are left to their new holder.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import aiohttp
import structlog

from sambung import metrics
from sambung.auth.oauth import SINK_OUTLET
from sambung.clock import Clock
from sambung.config import LoadedConfig
from sambung.delivery.sinks import SinkSettings
from sambung.errors import (
    DeliveryRejected,
    RetriableError,
    SinkDisconnected,
    SinkGone,
    SinkPaused,
    StoreUnavailable,
)
from sambung.plugins import Registry
from sambung.ratelimit import Budgets
from sambung.runtime import supervision
from sambung.store import CredentialStore, DeadLetter, DeliveryStore
from sambung.store.base import AttemptNote, ClaimedRow, OutboxSettlement, SinkStats

from .sinks import Delivered, Delivery, DeliveryResult, Sink, SinkContext

if TYPE_CHECKING:
    from sambung.auth.credentials import CredentialService

log = structlog.get_logger(__name__)

# Seconds before attempt 1, 2, …: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (Svix's).
DEFAULT_SCHEDULE: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
# A receiver's Retry-After is honoured up to this; beyond it we assume a misconfiguration.
MAX_RETRY_AFTER = 24 * 3600.0
# Retry delays are spread by ±10 % so a receiver coming back is not hit by every row at once.
DEFAULT_JITTER = 0.1
# Seconds between two rounds of the outbox housekeeping (gauges, pruning).
MAINTENANCE_EVERY = 10.0


@dataclass(frozen=True)
class RetryPolicy:
    """When to try again after a retriable failure, and when to give up."""

    schedule: tuple[float, ...] = DEFAULT_SCHEDULE
    jitter: float = DEFAULT_JITTER

    @property
    def max_attempts(self) -> int:
        """Attempts in all, the first one included."""
        return len(self.schedule)

    def next_delay(
        self, failed_attempts: int, retry_after: float | None, rng: random.Random
    ) -> float | None:
        """Seconds until the next attempt after `failed_attempts` failures; None once exhausted."""
        if failed_attempts >= len(self.schedule):
            return None
        delay = self.schedule[failed_attempts]
        if self.jitter:
            delay *= 1 + rng.uniform(-self.jitter, self.jitter)
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
        return delay


@dataclass
class SinkRuntime:
    """One configured sink as the dispatcher drives it."""

    name: str
    sink: Sink[SinkSettings]
    policy: RetryPolicy
    concurrency: int
    retention: timedelta
    disabled: str | None = None  # why, once the receiver answered 410
    paused_until: datetime | None = None  # while the destination's quota is used up
    disconnected: bool = False  # its OAuth credentials were refused, until a delivery works
    failing: bool = False
    last_error: str | None = None
    last_success_at: datetime | None = None


DeadLetterNotifier = Callable[[DeadLetter], None]
# Told once when a sink's OAuth credentials are refused for good: (outlet "*", sink, error).
ReauthNotifier = Callable[[str, str, str], None]


class Dispatcher:
    """Delivers the outbox of every configured sink."""

    def __init__(
        self,
        store: DeliveryStore,
        loaded: LoadedConfig,
        registry: Registry,
        *,
        clock: Clock,
        notify: DeadLetterNotifier = lambda _entry: None,
        notify_reauth: ReauthNotifier = lambda _outlet, _sink, _error: None,
        session: aiohttp.ClientSession | None = None,
        rng: random.Random | None = None,
        batch_size: int = 1000,
        lease_seconds: float = 300.0,
        idle_seconds: float = 0.2,
        deliver_timeout: float = 120.0,
        jitter: float = DEFAULT_JITTER,
        budgets: Budgets | None = None,
        credentials: CredentialService | None = None,
    ) -> None:
        self.store = store
        self.loaded = loaded
        self.registry = registry
        self.clock = clock
        self.notify = notify
        self.notify_reauth = notify_reauth
        self.rng = rng or random.Random()
        self.batch_size = batch_size
        self.lease_seconds = lease_seconds
        self.idle_seconds = idle_seconds
        self.deliver_timeout = deliver_timeout
        self.jitter = jitter
        self._session = session
        self._own_session = session is None
        self.sinks: dict[str, SinkRuntime] = {}
        # Rate budgets per vendor account, shared by every sink that posts to the same one.
        self.budgets = budgets or Budgets()
        # Tokens of sinks that connect through OAuth (stored under the outlet "*").
        self.credentials = credentials or _ephemeral_credentials(store, clock)

    async def open(self) -> None:
        """Build and open every configured sink, and free claims a crashed run left behind."""
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
            self._session = aiohttp.ClientSession(
                connector=connector, headers={"User-Agent": "sambung"}
            )
        for name, config in self.loaded.config.sinks.items():
            cls = self.registry.sinks[config.type]
            settings = self.loaded.sink_settings.get(name) or cls.Settings.model_validate(
                config.model_extra or {}
            )
            context = SinkContext(
                name=name,
                settings=settings,
                clock=self.clock,
                session=self._session,
                base_dir=self.loaded.base_dir,
                log=log.bind(sink=name, sink_type=config.type),
                budgets=self.budgets,
                credentials=self.credentials,
            )
            sink = cls(context)
            await sink.open()
            schedule = tuple(config.retry_schedule or DEFAULT_SCHEDULE)
            self.sinks[name] = SinkRuntime(
                name=name,
                sink=sink,
                policy=RetryPolicy(schedule, self.jitter),
                concurrency=config.concurrency,
                retention=timedelta(hours=config.retention_hours),
            )
            metrics.child(metrics.SINK_DISABLED, name).set(0)
        # On SQLite one dispatcher per store: a claim still held now was held by a process that
        # died. On PostgreSQL the store frees only this replica's own (a restart under the same
        # id); other replicas' claims are taken over once they expire.
        released = await self.store.release_claims()
        if released:
            log.warning("outbox.claims_released", rows=released, hint="after a crash or kill")

    async def close(self) -> None:
        """Free this run's claims, close every sink and the HTTP session this dispatcher made.

        Called after the loops are cancelled: a batch cut off by shutdown was not settled, and
        its rows go out again (same ids) on the next start.
        """
        if self.sinks:
            with contextlib.suppress(StoreUnavailable):
                await self.store.release_claims()
        for runtime in self.sinks.values():
            try:
                await runtime.sink.close()
            except Exception as err:
                log.error("outbox.sink_close_failed", sink=runtime.name, error=str(err))
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    def start(self, start_loop: Callable[..., None]) -> None:
        """Start one supervised loop per sink and one for housekeeping (`daemon.loops.start`)."""
        for name in self.sinks:
            start_loop(
                f"outbox.{name}",
                lambda name=name: self.run_sink(name),
                interval=self.idle_seconds,
                sink=name,
            )
        if self.sinks:
            start_loop("outbox.maintenance", self.run_maintenance, interval=MAINTENANCE_EVERY)

    async def run_sink(self, name: str) -> None:
        """Deliver `name`'s outbox until cancelled, resting briefly whenever nothing is due."""
        # Only this loop claims for this sink in this replica: after a crash of the loop (say
        # the store failed while settling) its claims are stale, and waiting them out would
        # stall delivery.
        await self.store.release_claims(name)
        while True:
            delivered = await self.drain_once(name)
            supervision.cycle_done()
            if delivered == 0:
                await asyncio.sleep(self.idle_seconds)

    async def run_maintenance(self, every: float = MAINTENANCE_EVERY) -> None:
        """Refresh the outbox gauges and prune delivered rows past their retention."""
        while True:
            await self.refresh_gauges()
            await self.prune()
            supervision.cycle_done()
            await asyncio.sleep(every)

    async def drain_once(self, name: str) -> int:
        """Claim one batch of due rows of sink `name`, deliver and settle it; returns its size."""
        runtime = self.sinks[name]
        if runtime.disabled is not None:
            return 0
        now = self.clock.now()
        if runtime.paused_until is not None:
            if now < runtime.paused_until:
                return 0
            self._resume(runtime)
        # A batch is settled when its slowest item is done, so one timing-out request holds up
        # the rest: keep batches a few rounds of the sink's concurrency, not more.
        limit = min(self.batch_size, runtime.concurrency * max(1, runtime.sink.max_batch) * 8)
        # The claims hold a lease from before the claim was asked for, by this process's own
        # monotonic time: the fence never trusts a claim longer than the store keeps it.
        fence = _Fence(asyncio.get_running_loop().time() + self.lease_seconds * 2 / 3)
        rows = await self.store.claim_outbox(
            name, now=now, limit=limit, lease_seconds=self.lease_seconds
        )
        if not rows:
            return 0
        delivering = asyncio.ensure_future(self._deliver(runtime, rows, fence))
        try:
            await self._renew_while(delivering, fence, rows)
        finally:
            if not delivering.done():  # this loop is being cancelled (shutdown)
                delivering.cancel()
                await asyncio.gather(delivering, return_exceptions=True)
        sent = [
            (row, result, started_at, latency_ms)
            for row, (result, started_at, latency_ms) in zip(rows, delivering.result(), strict=True)
            if not isinstance(result, _Fenced)
        ]
        results = [result for _, result, _, _ in sent]
        settlements = [self._settle(runtime, *sent_row) for sent_row in sent]
        # Counted once a batch, not once a row: most rows are delivered, the rest count each.
        delivered = sum(1 for s in settlements if s.status == "delivered")
        if delivered:
            metrics.child(metrics.DELIVERIES, runtime.name, "delivered").inc(delivered)
        if len(settlements) < len(rows):
            log.warning(
                "outbox.batch_fenced",
                sink=name,
                unsent=len(rows) - len(settlements),
                hint="its claims could not be renewed in time; they pass on unsent",
            )
        created = await self.store.settle_outbox(settlements, now=self.clock.now())
        for entry in created:
            metrics.child(metrics.DEAD_LETTERS, "delivery", entry.connector).inc()
            log.warning(
                "outbox.dead_lettered",
                sink=name,
                dead_letter_id=entry.id,
                outbox_id=entry.outbox_id,
                error_type=entry.error_type,
                error=entry.error,
            )
            self.notify(entry)
        self._track_health(runtime, results)
        return len(rows)

    async def _renew_while(
        self, delivering: asyncio.Future[Any], fence: _Fence, rows: Sequence[ClaimedRow]
    ) -> None:
        """Renew the batch's claims every third of a lease until its delivery is done."""
        loop = asyncio.get_running_loop()
        renew_every = self.lease_seconds / 3
        ids = {row.id for row in rows}
        while True:
            left = fence.deadline - loop.time()
            await asyncio.wait({delivering}, timeout=max(0.0, min(renew_every, left)))
            if delivering.done():
                return
            if loop.time() >= fence.deadline:
                # Past the fence every send in flight cuts itself off and no other starts (see
                # `_deliver_chunk`): the batch ends by itself, with what was sent before.
                await asyncio.wait({delivering})
                return
            started = loop.time()
            try:
                async with asyncio.timeout(max(0.05, fence.deadline - started)):
                    held = await self.store.renew_claims(
                        sorted(ids), now=self.clock.now(), lease_seconds=self.lease_seconds
                    )
            except (StoreUnavailable, TimeoutError) as err:
                supervision.failing(f"cannot renew outbox claims: {err}")
                continue
            fence.lost |= ids - held
            ids &= held
            fence.extend(started + self.lease_seconds * 2 / 3)
            supervision.cycle_done()  # holding its claims and delivering: not stalled

    async def _deliver(
        self, runtime: SinkRuntime, rows: Sequence[ClaimedRow], fence: _Fence | None = None
    ) -> list[_Answer]:
        """Each row's result, with when its send started and how long it took (ms)."""
        size = max(1, runtime.sink.max_batch)
        deliveries = [_delivery(row) for row in rows]
        chunks = [deliveries[i : i + size] for i in range(0, len(deliveries), size)]
        answers: list[list[DeliveryResult | _Fenced]] = [[] for _ in chunks]
        timings: list[tuple[datetime, int | None]] = [(self.clock.now(), None)] * len(chunks)
        pending = iter(range(len(chunks)))
        loop = asyncio.get_running_loop()

        async def worker() -> None:
            # `concurrency` workers share the chunks: far fewer tasks than one per chunk.
            for index in pending:
                chunk = chunks[index]
                if fence is not None and not fence.allows(chunk):
                    answers[index] = [FENCED] * len(chunk)  # checked before every send
                    continue
                started_at, began = self.clock.now(), loop.time()
                answers[index] = await self._deliver_chunk(runtime, chunk, fence)
                # A duration, so the event loop's monotonic time, not the (movable) clock's.
                timings[index] = (started_at, round((loop.time() - began) * 1000))

        workers = min(runtime.concurrency, len(chunks))
        if workers == 1:
            await worker()
        else:
            await asyncio.gather(*(worker() for _ in range(workers)))
        return [
            (result, *timing)
            for answer, timing in zip(answers, timings, strict=True)
            for result in answer
        ]

    async def _deliver_chunk(
        self, runtime: SinkRuntime, chunk: list[Delivery], fence: _Fence | None = None
    ) -> list[DeliveryResult | _Fenced]:
        limit = asyncio.get_running_loop().time() + self.deliver_timeout
        scope = asyncio.timeout_at(limit if fence is None else min(limit, fence.deadline))
        try:
            # asyncio.timeout, not wait_for: no extra task per call on the hot path. The fence
            # moves the scope's deadline when the claims are renewed.
            async with scope:
                if fence is not None:
                    fence.watch(scope, limit)
                try:
                    results = await runtime.sink.deliver(chunk)
                finally:
                    if fence is not None:
                        fence.unwatch(scope)
        except TimeoutError as err:
            when = scope.when()
            if scope.expired() and when is not None and when < limit:
                return [FENCED] * len(chunk)  # cut off by the fence, not by the sink's timeout
            return [err] * len(chunk)
        except Exception as err:  # a sink that raises has delivered nothing of the chunk
            return [err] * len(chunk)
        if len(results) != len(chunk):
            problem = RuntimeError(f"deliver() returned {len(results)} results for {len(chunk)}")
            return [problem] * len(chunk)
        return list(results)

    def _settle(
        self,
        runtime: SinkRuntime,
        row: ClaimedRow,
        result: DeliveryResult,
        started_at: datetime | None = None,
        latency_ms: int | None = None,
    ) -> OutboxSettlement:
        """What one item's result means for its row, with a note of the attempt to keep."""
        if result is None:  # the common case, kept short: this runs once per delivery
            status, body, error_type = None, None, None
        else:
            status, body = _answer_of(result)
            error_type = None if isinstance(result, Delivered) else type(result).__name__
        note = AttemptNote(
            row.sink,
            row.record_id,
            row.revision,
            row.attempts + 1,
            started_at or self.clock.now(),
            latency_ms,
            status,
            error_type,
            body,
        )
        return self._decide(runtime, row, result, note)

    def _decide(
        self, runtime: SinkRuntime, row: ClaimedRow, result: DeliveryResult, note: AttemptNote
    ) -> OutboxSettlement:
        """What one item's result means for its row."""
        sink = runtime.name
        if result is None or isinstance(result, Delivered):  # counted by the batch
            return OutboxSettlement(row.id, "delivered", attempt=note)
        error = _describe(result)
        if isinstance(result, SinkGone):
            metrics.child(metrics.DELIVERIES, sink, "gone").inc()
            self._disable(runtime, error)
            return OutboxSettlement(
                row.id, "dead", error=error, error_type="SinkGone", attempt=note
            )
        if isinstance(result, SinkPaused):
            metrics.child(metrics.DELIVERIES, sink, "paused").inc()
            self._pause(runtime, result)
            # Not a failed attempt of this item: it goes again once the sink resumes, which for
            # a disconnected sink is as soon as it is connected again (`reconnected`).
            due = self.clock.now() if isinstance(result, SinkDisconnected) else result.until
            return OutboxSettlement(
                row.id, "pending", error=error, next_attempt_at=due, attempt=note
            )
        if isinstance(result, DeliveryRejected):
            metrics.child(metrics.DELIVERIES, sink, "rejected").inc()
            return OutboxSettlement(
                row.id, "dead", error=error, error_type="DeliveryRejected", attempt=note
            )
        retry_after = result.retry_after if isinstance(result, RetriableError) else None
        delay = runtime.policy.next_delay(row.attempts + 1, retry_after, self.rng)
        if delay is None:
            metrics.child(metrics.DELIVERIES, sink, "dead").inc()
            return OutboxSettlement(
                row.id,
                "dead",
                error=f"gave up after {row.attempts + 1} attempts; last: {error}",
                error_type="RetriesExhausted",
                attempt=note,
            )
        metrics.child(metrics.DELIVERIES, sink, "retry").inc()
        return OutboxSettlement(
            row.id,
            "pending",
            error=error,
            next_attempt_at=self.clock.now() + timedelta(seconds=delay),
            attempt=note,
        )

    def _disable(self, runtime: SinkRuntime, reason: str) -> None:
        if runtime.disabled is not None:
            return
        runtime.disabled = reason
        metrics.child(metrics.SINK_DISABLED, runtime.name).set(1)
        log.error(
            "sink.disabled",
            sink=runtime.name,
            reason=reason,
            hint="the receiver answered 410 Gone; fix it, restart sambung, replay the dead letter",
        )

    def _pause(self, runtime: SinkRuntime, paused: SinkPaused) -> None:
        if isinstance(paused, SinkDisconnected) and not runtime.disconnected:
            runtime.disconnected = True
            self.notify_reauth(SINK_OUTLET, runtime.name, str(paused))
        if runtime.paused_until is not None and paused.until <= runtime.paused_until:
            return
        runtime.paused_until = paused.until
        metrics.child(metrics.SINK_PAUSED_UNTIL, runtime.name).set(paused.until.timestamp())
        log.error(
            "sink.paused",
            sink=runtime.name,
            until=paused.until.isoformat(),
            reason=str(paused),
            hint=str(paused)
            if isinstance(paused, SinkDisconnected)
            else "the destination refuses everything until then; rows wait and nothing is lost",
        )

    def reconnected(self, name: str) -> None:
        """Sink `name` got new credentials (a finished `sambung connect --sink`): a pause for
        want of them ends now, so the waiting rows go out at once."""
        runtime = self.sinks.get(name)
        if runtime is not None and runtime.paused_until is not None:
            self._resume(runtime)

    def _resume(self, runtime: SinkRuntime) -> None:
        runtime.paused_until = None
        metrics.child(metrics.SINK_PAUSED_UNTIL, runtime.name).set(0)
        log.info("sink.resumed", sink=runtime.name)

    def _track_health(self, runtime: SinkRuntime, results: Sequence[DeliveryResult]) -> None:
        """Log once when a sink starts failing and once when it recovers."""
        failures = [r for r in results if isinstance(r, BaseException)]
        if len(failures) < len(results):
            runtime.last_success_at = self.clock.now()
            runtime.disconnected = False
        if failures:
            runtime.last_error = _describe(failures[-1])
        if failures and not runtime.failing:
            runtime.failing = True
            log.warning(
                "sink.failing", sink=runtime.name, failed=len(failures), error=runtime.last_error
            )
        elif not failures and runtime.failing:
            runtime.failing = False
            log.info("sink.recovered", sink=runtime.name)

    async def refresh_gauges(self) -> dict[str, SinkStats]:
        """Set the pending and oldest-age gauges of every sink from the store."""
        stats = await self.store.outbox_stats()
        now = self.clock.now()
        for name in self.sinks:
            found = stats.get(name)
            pending = found.pending if found else 0
            oldest = found.oldest_pending_at if found else None
            metrics.child(metrics.OUTBOX_PENDING, name).set(pending)
            age = (now - oldest).total_seconds() if oldest else 0.0
            metrics.child(metrics.OUTBOX_OLDEST_AGE, name).set(max(0.0, age))
        return stats

    async def prune(self) -> int:
        """Delete delivered rows older than their sink's retention; returns how many."""
        pruned = 0
        # Retention is per sink, but rows are pruned by the shortest: simple, and conservative
        # enough since delivered rows are only kept for audit.
        if not self.sinks:
            return 0
        shortest = min(runtime.retention for runtime in self.sinks.values())
        while True:
            count = await self.store.prune_outbox(before=self.clock.now() - shortest)
            pruned += count
            if count == 0:
                break
        if pruned:
            log.info("outbox.pruned", rows=pruned)
        await self.prune_attempts()
        return pruned

    async def prune_attempts(self) -> int:
        """Delete kept delivery attempts past `delivery.attempts_retention`; returns how many."""
        keep = timedelta(days=self.loaded.config.delivery.attempts_retention.days)
        pruned = 0
        while count := await self.store.prune_delivery_attempts(before=self.clock.now() - keep):
            pruned += count
        if pruned:
            log.info("outbox.attempts_pruned", attempts=pruned)
        return pruned

    def status(self) -> dict[str, dict[str, Any]]:
        """What the dispatcher knows beyond the store: disabled, failing, last success/error."""
        return {
            name: {
                "type": self.loaded.config.sinks[name].type,
                "disabled": runtime.disabled,
                "paused_until": runtime.paused_until,
                "failing": runtime.failing,
                "last_success_at": runtime.last_success_at,
                "last_error": runtime.last_error,
            }
            for name, runtime in self.sinks.items()
        }


# One row's result from `_deliver`: the result, when its send started, its latency in ms.
_Answer = tuple["DeliveryResult | _Fenced", datetime, int | None]


class _Fenced:
    """The result of an item not sent (or cut off) because its claim could pass on."""

    def __repr__(self) -> str:
        return "FENCED"


FENCED = _Fenced()


class _Fence:
    """How long the claims of one batch are this replica's to deliver, by the event loop's
    clock: a third of a lease before the store could hand them to another replica."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.lost: set[int] = set()  # rows whose claim another holder has by now
        self._scopes: dict[asyncio.Timeout, float] = {}

    def allows(self, chunk: Sequence[Delivery]) -> bool:
        """Whether a send of `chunk` may start now."""
        if asyncio.get_running_loop().time() >= self.deadline:
            return False
        return not any(delivery.outbox_id in self.lost for delivery in chunk)

    def watch(self, scope: asyncio.Timeout, limit: float) -> None:
        """Cut a send off at the fence (or at its own `limit`, whichever comes first)."""
        self._scopes[scope] = limit

    def unwatch(self, scope: asyncio.Timeout) -> None:
        """The send is over."""
        self._scopes.pop(scope, None)

    def extend(self, deadline: float) -> None:
        """The claims were renewed: every send in flight may run until the new fence."""
        self.deadline = max(self.deadline, deadline)
        for scope, limit in self._scopes.items():
            scope.reschedule(min(limit, self.deadline))


def _ephemeral_credentials(store: CredentialStore, clock: Clock) -> CredentialService:
    """Credentials under a random key, for a dispatcher built without the daemon's (tests)."""
    from sambung.auth.credentials import CredentialService, SecretBox

    return CredentialService(store, SecretBox.ephemeral(), clock=clock)


def _delivery(row: ClaimedRow) -> Delivery:
    return Delivery(
        id=row.idempotency_key,
        outbox_id=row.id,
        sink=row.sink,
        outlet=row.outlet,
        source_system=row.source_system,
        kind=row.kind,
        record_id=row.record_id,
        revision=row.revision,
        payload=row.payload,
        attempt=row.attempts + 1,
        created_at=row.created_at,
    )


def _answer_of(result: DeliveryResult) -> tuple[int | None, str | None]:
    """What the destination answered, when the sink said: (HTTP status, body)."""
    if isinstance(result, Delivered):
        return result.status, result.body
    if isinstance(result, RetriableError | DeliveryRejected):
        return result.status, result.body or None
    return None, None


def _describe(error: BaseException) -> str:
    text = str(error)
    if isinstance(error, DeliveryRejected | SinkGone | SinkPaused | RetriableError):
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
