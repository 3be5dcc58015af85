"""Poll mode: one loop per polled connection, owned by core.

A loop runs its connector's `poll(window)` every `interval` (with jitter, a first run at
start-up, never two runs at once) and commits each page's records together with its cursor in
one transaction, so a crash resumes from the last committed page and the cursor never passes
data that is not stored. Each run re-reads `overlap` before the cursor; the upsert fingerprint
turns the overlap into no new outbox rows. The cursor never moves backwards.

Failures are handled by class: `RetriableError` is retried with backoff and jitter (honouring
the vendor's `Retry-After`), then the run ends and the next interval tries again; `AuthError`
gets one credential refresh, then the connection goes to `needs_reauth` and stops polling until
its credentials change; `RequestRejected` and anything else mark it `failing`.

An operator may pause a connection (`sambung pause`, kept in the store): the loop checks at the
start of every cycle and, while paused, neither polls nor runs backfills; a resume wakes it.
Every run, and every backfill slice, ends with one row in the connection's recent runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from sambung import metrics
from sambung.clock import Clock, Sleeper, SystemClock, monotonic, real_sleep
from sambung.connectors import Mode, Page, PollConnector, PollSettings, PollWindow, secret_values
from sambung.errors import (
    AuthError,
    InvalidRecord,
    LeaseLost,
    RequestRejected,
    RetriableError,
    StoreUnavailable,
)
from sambung.runtime import supervision
from sambung.runtime.replicas import ensure_lease, held_lease
from sambung.store import (
    BackfillProgress,
    ConnectionState,
    ConnectionStatus,
    CursorUpdate,
    IngestRequest,
    IngestResult,
    IntakeStore,
    Outcome,
    PollRun,
    PollStore,
    RunOutcome,
)
from sambung.store.controls import ControlStore

from .controls import is_paused
from .guard import ensure_own, rejection

if TYPE_CHECKING:
    from sambung.auth.credentials import CredentialService

log = structlog.get_logger(__name__)

Routes = Callable[[str, str], Sequence[str]]
ReauthNotifier = Callable[[ConnectionState], None]
# Jitter on every interval, as a fraction of it: loops started together drift apart.
JITTER = 0.1
# The most a first run waits, so a thousand loops do not all start in the same instant.
START_SPREAD_SECONDS = 5.0
# A vendor's Retry-After is honoured within a run up to this; beyond it, the run ends and the
# next one waits at least that long.
MAX_WAIT_IN_RUN = timedelta(minutes=2)
BACKOFF = wait_random_exponential(multiplier=1, max=60)


@dataclass(frozen=True)
class RunResult:
    """What one poll run did."""

    status: ConnectionStatus
    records: int = 0
    pages: int = 0
    cursor: datetime | None = None
    error: str | None = None
    skipped: bool = False


def credentials_digest(settings: Any) -> str:
    """A hash of a connection's secrets: it changes exactly when its credentials change."""
    secrets = sorted(f"{name}={value}" for name, value in secret_values(settings).items())
    return hashlib.sha256("\0".join(secrets).encode()).hexdigest()[:24]


def to_cursor(instant: datetime) -> str:
    """A cursor as stored: UTC ISO-8601 text."""
    return instant.astimezone(UTC).isoformat()


def from_cursor(value: str | None) -> datetime | None:
    """A stored cursor back to an aware instant."""
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Backfills(Protocol):
    """What runs a connection's backfills between its live runs (`backfill.BackfillService`)."""

    async def run_due(self, loop: PollLoop, deadline: datetime) -> bool:
        """Run due backfills of `loop`'s connection until `deadline`; whether work is left."""
        ...


class _RetryLater(Exception):
    """The vendor asked us to wait longer than a run should: end it, cursor untouched."""

    def __init__(self, cause: RetriableError) -> None:
        self.cause = cause
        super().__init__(str(cause))


class PollLoop:
    """The loop of one polled connection (one outlet, one connector)."""

    def __init__(
        self,
        connector: PollConnector[PollSettings],
        store: IntakeStore,
        routes: Routes,
        *,
        clock: Clock | None = None,
        sleep: Sleeper = real_sleep,
        notify_reauth: ReauthNotifier | None = None,
        backfills: Backfills | None = None,
        controls: ControlStore | None = None,
    ) -> None:
        self.connector = connector
        self.store = store
        # Operator pauses and the recent-runs record (none in tests that need neither).
        self.controls = controls
        self.backfills = backfills
        self.routes = routes
        self.clock = clock or SystemClock()
        self.sleep = sleep
        self.notify_reauth = notify_reauth
        self.log = connector.log
        self.status = ConnectionStatus.OK
        self._refused: str | None = None
        self._failing_since: datetime | None = None
        self._failed_runs = 0
        self._not_before: datetime | None = None
        self._running = asyncio.Lock()
        self._wake = asyncio.Event()
        self._loaded = False
        self._paused = False

    @property
    def settings(self) -> PollSettings:
        """The connection's settings."""
        settings = self.connector.settings
        assert isinstance(settings, PollSettings)
        return settings

    @property
    def outlet(self) -> str:
        """The outlet id."""
        return self.connector.outlet.id

    @property
    def name(self) -> str:
        """The connector name."""
        return self.connector.name

    def replace_connector(self, connector: PollConnector[PollSettings]) -> None:
        """Use new settings (new credentials) from the next run on; a connection waiting for
        credentials runs at once."""
        self.connector = connector
        self.log = connector.log
        if self.status is ConnectionStatus.NEEDS_REAUTH:
            self.wake()

    async def run_forever(self) -> None:
        """Run at start-up, then every interval (with jitter) until cancelled."""
        # Started again after another replica held the loop: read its state afresh.
        self._loaded = False
        await self.sleep(random.uniform(0, min(START_SPREAD_SECONDS, self._interval() * JITTER)))
        while True:
            if await self.paused():
                if not self._paused:  # once when the pause starts, once when it ends
                    self._paused = True
                    self.log.info("poll.paused", hint="no polls or backfills until resumed")
                supervision.cycle_done()  # paused is idle, not stalled
                await self._pause(self._next_delay())  # a resume wakes it
                continue
            if self._paused:
                self._paused = False
                self.log.info("poll.resumed")
            await self.run_once()
            more = await self.run_backfills()
            supervision.cycle_done()
            # A backfill cut short by the interval goes on right after the next live run.
            await self._pause(0 if more else self._next_delay())

    async def run_backfills(self) -> bool:
        """Run this connection's due backfills for up to one interval, never beside a live
        run (and so never beyond the vendor load of one); whether work is left."""
        if self.backfills is None or self.status is ConnectionStatus.NEEDS_REAUTH:
            return False
        if await self.paused():
            return False
        async with self._running:
            deadline = self.clock.now() + self.settings.interval
            try:
                return await self.backfills.run_due(self, deadline)
            except StoreUnavailable as err:  # as a live run: wait for the next interval
                self.log.error("backfill.store_unavailable", error=str(err))
                return False

    async def paused(self) -> bool:
        """Whether an operator paused this connection (read from the store each cycle, so a
        pause made on another replica holds here too)."""
        return await is_paused(self.controls, self.outlet, self.name, self.log)

    async def record_run(self, run: PollRun) -> None:
        """Add one finished run (or backfill slice) to the connection's recent runs."""
        if self.controls is None:
            return
        try:
            await self.controls.record_run(run)
        except StoreUnavailable as err:  # a missing history line must not fail the run
            self.log.error("poll.run_not_recorded", error=str(err))

    def wake(self) -> None:
        """Run now rather than at the end of the current wait (new credentials arrived)."""
        self._wake.set()

    def credentials_renewed(self) -> None:
        """New tokens were stored (a finished connect flow): leave needs_reauth, run now."""
        self._refused = None
        self.wake()

    async def _pause(self, seconds: float) -> None:
        sleeping = asyncio.ensure_future(self.sleep(seconds))
        woken = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeping, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeping.cancel()
            woken.cancel()
            self._wake.clear()

    def _interval(self) -> float:
        return self.settings.interval.total_seconds()

    def _next_delay(self) -> float:
        interval = self._interval()
        delay = interval * random.uniform(1 - JITTER, 1 + JITTER)
        if self._not_before is not None:
            delay = max(delay, (self._not_before - self.clock.now()).total_seconds())
            self._not_before = None
        return delay

    async def _load_state(self) -> None:
        """Pick up a needs_reauth state from before a restart (it holds while the same
        credentials are configured)."""
        self._loaded = True
        for state in await self.store.list_connection_states():
            if (state.outlet, state.connector, state.mode) == (self.outlet, self.name, "poll"):
                if state.state is ConnectionStatus.NEEDS_REAUTH:
                    self.status = state.state
                    self._refused = state.refused_credentials
                    if await self._connected_since(state.last_error_at):
                        self._refused = None
                elif state.state is ConnectionStatus.FAILING:
                    self.status = state.state
                    self._failing_since = state.last_error_at

    async def _connected_since(self, when: datetime | None) -> bool:
        """Whether stored credentials changed after `when` (connected while we were down)."""
        credentials = self.connector.context.credentials
        if credentials is None or when is None:
            return False
        updated: datetime | None = await credentials.updated_at()
        return updated is not None and updated > when

    async def run_once(self) -> RunResult:
        """One poll run, start to finish; never two at once for the same connection."""
        async with self._running:
            if not self._loaded:
                await self._load_state()
            if self.status is ConnectionStatus.NEEDS_REAUTH:
                if credentials_digest(self.settings) == self._refused:
                    return RunResult(ConnectionStatus.NEEDS_REAUTH, skipped=True)
                self.log.info("poll.credentials_changed", hint="resuming after needs_reauth")
                self.status, self._refused = ConnectionStatus.FAILING, None
            return await self._run()

    async def _run(self) -> RunResult:
        started = time.perf_counter()
        run_at = self.clock.now()
        counter = _Counter(run_at)
        try:
            cursor = await self._with_retries(counter)
        except LeaseLost as err:
            await self._record(run_at, counter, RunOutcome.LEASE_LOST, None, str(err))
            raise  # not a failure of the connection: the loop stops here (`Replica.own`)
        except AuthError as err:
            result = await self._needs_reauth(run_at, counter, err)
        except _RetryLater as err:
            result = await self._failed(run_at, counter, err.cause)
        except (RetriableError, RequestRejected, StoreUnavailable, InvalidRecord) as err:
            result = await self._failed(run_at, counter, err)
        except Exception as err:  # a connector bug must not kill the loop
            if self.status is ConnectionStatus.OK:  # the traceback once, not every interval
                self.log.exception("poll.crashed", error=f"{type(err).__name__}: {err}")
            result = await self._failed(run_at, counter, err)
        else:
            result = await self._succeeded(run_at, counter, cursor)
        outcome = {
            ConnectionStatus.OK: RunOutcome.OK,
            ConnectionStatus.NEEDS_REAUTH: RunOutcome.NEEDS_REAUTH,
        }.get(result.status, RunOutcome.FAILED)
        await self._record(run_at, counter, outcome, result.cursor, result.error)
        status = {
            ConnectionStatus.OK: "success",
            ConnectionStatus.NEEDS_REAUTH: "needs_reauth",
        }.get(result.status, "failure")
        metrics.child(metrics.SYNC_TOTAL, self.name, status).inc()
        metrics.child(metrics.SYNC_SECONDS, self.name).observe(time.perf_counter() - started)
        return result

    async def _record(
        self,
        run_at: datetime,
        counter: _Counter,
        outcome: RunOutcome,
        cursor: datetime | None,
        error: str | None,
    ) -> None:
        await self.record_run(
            PollRun(
                self.outlet,
                self.name,
                "live",
                run_at,
                self.clock.now(),
                outcome,
                pages=counter.pages,
                records_fetched=counter.records,
                records_new=counter.new,
                records_changed=counter.changed - counter.new,
                error=error,
                cursor_before=counter.cursor_before,
                # A failed run may still have moved it, page by page.
                cursor_after=to_cursor(cursor)
                if cursor
                else counter.cursor_after or counter.cursor_before,
            )
        )

    async def _with_retries(self, counter: _Counter) -> datetime | None:
        """Fetch and commit every page; retry passing failures; refresh credentials once."""
        refreshed = False
        while True:
            try:
                return await self._retrying(counter)
            except AuthError:
                if refreshed:
                    raise
                refreshed = True
                self.log.info("poll.reauthenticating")
                await self.connector.reauthenticate()

    async def _retrying(self, counter: _Counter) -> datetime | None:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.retries + 1),
            wait=self._wait,
            retry=retry_if_exception_type(RetriableError),
            sleep=self.sleep,
            reraise=True,
        )
        cursor: datetime | None = None
        async for attempt in retrying:
            with attempt:
                cursor = await self._pages(counter)
        return cursor

    def _wait(self, state: RetryCallState) -> float:
        """Backoff with jitter, or exactly what the vendor asked for."""
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RetriableError) and error.retry_after is not None:
            if error.retry_after > MAX_WAIT_IN_RUN.total_seconds():
                self._not_before = self.clock.now() + timedelta(seconds=error.retry_after)
                raise _RetryLater(error)
            return error.retry_after
        return float(BACKOFF(state))

    async def _pages(self, counter: _Counter) -> datetime | None:
        """One attempt: from the committed cursor (less the overlap) to now.

        The cursor is read afresh every time, so one an operator set (`sambung cursor set`)
        is the next run's; its generation goes with each page's cursor update, so a set made
        while this run's pages are in flight is not overwritten by them.
        """
        state = await self.store.get_cursor_state(self.outlet, self.name)
        committed = from_cursor(state.value) if state is not None else None
        generation = state.generation if state is not None else 0
        if not counter.read:  # the run's first attempt: where the run started
            counter.read, counter.cursor_before = True, state.value if state else None
        now = self.clock.now()
        since = committed - self.settings.overlap if committed else now - self.settings.lookback
        window = PollWindow(since=since, until=now)
        # Only the lease holder may ask the vendor: checked before each page and, by the
        # connection's VendorHttp, as each request leaves (a replica thawed after its lease
        # passed stops there, even between the requests of one page).
        ensure_lease()
        async for page in self.connector.poll(window):
            committed = await self._commit(page, committed, window, counter, generation)
            supervision.cycle_done()  # a long backfill is progress, not a stall
            ensure_lease()
        return committed

    async def _commit(
        self,
        page: Page,
        committed: datetime | None,
        window: PollWindow,
        counter: _Counter,
        generation: int,
    ) -> datetime | None:
        """Commit one page's records with its cursor, in one transaction."""
        update = None
        if page.cursor is not None:
            # Never past our own now (a till clock running ahead), never backwards.
            candidate = min(page.cursor, window.until)
            if committed is None or candidate > committed:
                committed = candidate
                update = CursorUpdate(
                    self.outlet, self.name, to_cursor(candidate), generation, counter.run
                )
        result = await self.commit_page(page, cursor=update)
        if not page.records and update is None:
            return committed
        counter.records += len(page.records)
        counter.pages += 1
        counter.changed += sum(
            1 for r in result.records if r.outcome in (Outcome.INSERTED, Outcome.UPDATED)
        )
        counter.new += sum(1 for r in result.records if r.outcome is Outcome.INSERTED)
        if committed is not None:
            counter.cursor_after = to_cursor(committed)
        self.log.debug(
            "poll.page_committed",
            records=len(page.records),
            outbox_rows=result.outbox_rows,
            cursor=to_cursor(committed) if committed else None,
        )
        return committed

    async def commit_page(
        self,
        page: Page,
        *,
        cursor: CursorUpdate | None = None,
        backfill: BackfillProgress | None = None,
    ) -> IngestResult:
        """Commit one page of this connection (its records, and the live cursor or a
        backfill's progress) in one transaction, its rejects dead-lettered first."""
        ensure_own(((r.outlet, r.source_system) for r in page.records), self.outlet, self.name)
        for rejected in page.rejects:
            await self.store.ingest(
                IngestRequest(
                    dead_letter=rejection(
                        "ingest",
                        self.outlet,
                        self.name,
                        error_type=type(rejected.error).__name__,
                        error=str(rejected.error),
                        field=rejected.field,
                        payload=rejected.payload,
                    ),
                    lease=held_lease(),
                )
            )
            metrics.child(metrics.DEAD_LETTERS, "ingest", self.name).inc()
        if not page.records and cursor is None and backfill is None:
            return IngestResult()
        routes = [self.routes(self.outlet, record.kind) for record in page.records]
        # Fenced by the loop's lease (when it runs under one): a replica that was frozen while
        # the lease passed on commits nothing of this page, and stops.
        result = await self.store.ingest(
            IngestRequest(
                records=page.records,
                routes=routes,
                cursor=cursor,
                lease=held_lease(),
                backfill=backfill,
            )
        )
        now = self.clock.now()
        for record, outcome in zip(page.records, result.records, strict=True):
            metrics.child(metrics.RECORDS_INGESTED, self.name, "poll", outcome.outcome.value).inc()
            # A backfill reads the past on purpose: its records say nothing of the live lag.
            if record.source_updated_at is not None and backfill is None:
                lag = (now - record.source_updated_at).total_seconds()
                metrics.child(metrics.POLL_LAG_SECONDS, self.name).observe(max(0.0, lag))
        return result

    async def _succeeded(
        self, run_at: datetime, counter: _Counter, cursor: datetime | None
    ) -> RunResult:
        if self.status is not ConnectionStatus.OK:
            self.log.info(
                "poll.recovered",
                failed_runs=self._failed_runs,
                failing_since=self._failing_since.isoformat() if self._failing_since else None,
            )
        self.status, self._failing_since, self._failed_runs = ConnectionStatus.OK, None, 0
        if counter.changed:  # quiet runs (only the overlap re-read) stay out of the log
            self.log.info(
                "poll.records_stored",
                new_or_changed=counter.changed,
                fetched=counter.records,
                pages=counter.pages,
                cursor=to_cursor(cursor) if cursor else None,
            )
        await self._save(
            ConnectionState(
                self.outlet,
                self.name,
                Mode.POLL.value,
                ConnectionStatus.OK,
                last_run_at=run_at,
                last_success_at=self.clock.now(),
                records_fetched=counter.records,
            )
        )
        return RunResult(ConnectionStatus.OK, counter.records, counter.pages, cursor)

    async def _failed(self, run_at: datetime, counter: _Counter, err: Exception) -> RunResult:
        message = f"{type(err).__name__}: {err}"
        self._failed_runs += 1
        if self.status is ConnectionStatus.OK:  # once when it starts failing
            self._failing_since = run_at
            self.log.warning("poll.failing", error=message, records=counter.records)
        self.status = ConnectionStatus.FAILING
        await self._save(
            ConnectionState(
                self.outlet,
                self.name,
                Mode.POLL.value,
                ConnectionStatus.FAILING,
                last_run_at=run_at,
                last_error=message,
                last_error_at=self.clock.now(),
                records_fetched=counter.records,
            )
        )
        return RunResult(ConnectionStatus.FAILING, counter.records, counter.pages, error=message)

    async def _needs_reauth(self, run_at: datetime, counter: _Counter, err: AuthError) -> RunResult:
        message = f"{type(err).__name__}: {err}"
        self.status = ConnectionStatus.NEEDS_REAUTH
        self._refused = credentials_digest(self.settings)
        self.log.error(
            "poll.needs_reauth", error=message, hint="polling stops until new credentials"
        )
        state = ConnectionState(
            self.outlet,
            self.name,
            Mode.POLL.value,
            ConnectionStatus.NEEDS_REAUTH,
            last_run_at=run_at,
            last_error=message,
            last_error_at=self.clock.now(),
            records_fetched=counter.records,
            refused_credentials=self._refused,
        )
        await self._save(state)
        if self.notify_reauth is not None:
            self.notify_reauth(state)
        return RunResult(
            ConnectionStatus.NEEDS_REAUTH, counter.records, counter.pages, error=message
        )

    async def _save(self, state: ConnectionState) -> None:
        try:
            await self.store.save_connection_state(state)
        except StoreUnavailable as err:
            self.log.error("poll.state_not_saved", error=str(err))


class _Counter:
    """Records and pages committed so far in one run (kept across retries), the run's id
    (what a cursor it moves says moved it), and its cursor before and after."""

    __slots__ = (
        "changed",
        "cursor_after",
        "cursor_before",
        "new",
        "pages",
        "read",
        "records",
        "run",
    )

    def __init__(self, run_at: datetime) -> None:
        self.records = 0
        self.pages = 0
        self.changed = 0  # new or changed
        self.new = 0
        self.run = f"poll:{to_cursor(run_at)}"
        self.read = False
        self.cursor_before: str | None = None
        self.cursor_after: str | None = None


class PollService:
    """Every poll loop of one daemon, with the HTTP session, budgets and tokens they share."""

    def __init__(
        self,
        connections: Sequence[Any],
        store: PollStore,
        routes: Routes,
        *,
        clock: Clock | None = None,
        sleep: Sleeper = real_sleep,
        notify_reauth: ReauthNotifier | None = None,
        credentials: CredentialService | None = None,
        backfills: Backfills | None = None,
    ) -> None:
        from sambung.auth.credentials import CredentialService, SecretBox
        from sambung.ratelimit import Budgets

        self.connections = [
            c for c in connections if c.settings.enabled and Mode.POLL in c.settings.mode
        ]
        self.store = store
        self.routes = routes
        self.clock = clock or SystemClock()
        self.sleep = sleep
        self.notify_reauth = notify_reauth
        self.backfills = backfills
        # A fake clock brings its own monotonic time, so budgets wait in the same fake time.
        self.budgets = Budgets(clock=getattr(self.clock, "monotonic", monotonic), sleep=sleep)
        # Stored OAuth tokens; without the daemon's (tests), an in-memory key for this process.
        self.credentials = credentials or CredentialService(
            store, SecretBox.ephemeral(), clock=self.clock
        )
        self.tokens = self.credentials.tokens
        self.session: Any = None
        self.loops: dict[tuple[str, str], PollLoop] = {}

    def build(self, session: Any) -> list[PollLoop]:
        """One loop per polled connection, each connector wired to the shared session."""
        self.session = session
        for connection in self.connections:
            self.loops[(connection.outlet.id, connection.name)] = PollLoop(
                self._connector(connection),
                self.store,
                self.routes,
                clock=self.clock,
                sleep=self.sleep,
                notify_reauth=self.notify_reauth,
                backfills=self.backfills,
                controls=self.store,
            )
        return list(self.loops.values())

    def reload(self, connections: Sequence[Any]) -> list[str]:
        """Give running loops their new settings (after SIGHUP); returns which changed.

        Only connections polled before and after are updated: adding or removing a polled
        connection needs a restart.
        """
        changed = []
        for connection in connections:
            loop = self.loops.get((connection.outlet.id, connection.name))
            if loop is None or loop.connector.settings == connection.settings:
                continue
            if not connection.settings.enabled or Mode.POLL not in connection.settings.mode:
                continue
            loop.replace_connector(self._connector(connection))
            changed.append(f"{connection.outlet.id}/{connection.name}")
        return changed

    def _connector(self, connection: Any) -> PollConnector[PollSettings]:
        """A connector instance wired to the shared session, its budget and the token cache."""
        from sambung.connectors import ConnectorContext
        from sambung.http import VendorHttp

        from .known import KnownRecords

        settings = connection.settings
        bound = log.bind(outlet=connection.outlet.id, connector=connection.name)
        probe = connection.connector(
            ConnectorContext(outlet=connection.outlet, settings=settings, log=bound)
        )
        assert isinstance(probe, PollConnector)
        budget = self.budgets.for_account(
            probe.account(),
            settings.rate_limit or probe.rate_limit,
            settings.max_in_flight or probe.max_in_flight,
        )
        http = VendorHttp(
            self.session,
            budget=budget,
            timeout=settings.timeout.total_seconds(),
            clock=self.clock,
            tokens=self.tokens,
            fence=ensure_lease,
        )
        credentials = (
            self.credentials.for_connector(probe, http) if probe.oauth is not None else None
        )
        context = ConnectorContext(
            outlet=connection.outlet,
            settings=settings,
            log=bound,
            clock=self.clock,
            http=http,
            credentials=credentials,
            known=KnownRecords(self.store, connection.outlet, self.clock),
        )
        connector = connection.connector(context)
        assert isinstance(connector, PollConnector)
        return connector
