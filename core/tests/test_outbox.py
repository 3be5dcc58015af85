"""The dispatcher against a real store and a local receiver, with a clock the test moves."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import random
import sqlite3
import types
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from sambung import hookimpl
from sambung.config import LoadedConfig, load_config
from sambung.connectors import (
    ConnectorSettings,
    Secrets,
    WebhookConnector,
    WebhookEvent,
    WebhookRequest,
)
from sambung.delivery.dlq import DeadLetterFilter, DeadLetters
from sambung.delivery.outbox import DEFAULT_SCHEDULE, Dispatcher, RetryPolicy
from sambung.errors import InvalidRecord, StoreUnavailable
from sambung.intake.webhooks import WebhookIngest
from sambung.models import Transaction
from sambung.parse import business_date, money, require, text, timestamp
from sambung.plugins import Registry, load_plugins
from sambung.store import DeadLetter, IngestRequest, Store, open_store
from sambung.testing.manual_clock import ManualClock
from sambung.testing.receiver import Receiver
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from .conftest import sale

SECRET = "whsec_" + base64.b64encode(b"sambung-test-secret-32-bytes-long").decode()


# -- a connector whose mapping is fixed half way through a test ---------------------------------


class TallySettings(ConnectorSettings):
    webhook_secret: Secrets


def _tally(fixed: bool) -> type[WebhookConnector]:
    class Tally(WebhookConnector):
        """Sales as `{"id", "amount", "at"}`; the broken release read `total` instead."""

        name = "tally"
        Settings = TallySettings

        def verify(self, request: WebhookRequest) -> None:
            return None

        def parse(self, request: WebhookRequest) -> WebhookEvent:
            sale = request.payload
            field = "amount" if fixed else "total"
            if field not in sale:
                raise InvalidRecord("missing", field=field)
            occurred = timestamp(require(sale, "at"), self.outlet.timezone, "at")
            amount = money(require(sale, field), field)
            record = Transaction(
                outlet=self.outlet.id,
                source_system=self.name,
                external_id=text(require(sale, "id"), "id"),
                occurred_at=occurred,
                business_date=business_date(occurred, self.outlet.timezone),
                subtotal=amount,
                total=amount,
            )
            return WebhookEvent(event_type="sale", records=[record])

    return Tally


def _plugin(fixed: bool) -> types.ModuleType:
    module = types.ModuleType(f"tally_{'fixed' if fixed else 'broken'}")

    @hookimpl
    def sambung_register_connectors(register: Callable[[type], None]) -> None:
        register(_tally(fixed))

    module.sambung_register_connectors = sambung_register_connectors  # type: ignore[attr-defined]
    return module


def configure(tmp_path: Path, sinks: dict[str, Any], *, fixed: bool = True) -> LoadedConfig:
    """A LoadedConfig with one outlet (tally connector) and the given sinks."""
    document = {
        "outlets": [
            {
                "id": "kemang",
                "name": "Kemang",
                "connectors": {"tally": {"mode": "webhook", "webhook_secret": "s3cret"}},
            }
        ],
        "sinks": sinks,
    }
    path = tmp_path / "sambung.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return load_config(path, registry(fixed))


def clock(store: Store) -> ManualClock:
    """The clock the store writes with, which the test moves: rows fall due as it says."""
    assert isinstance(store.clock, ManualClock)
    return store.clock


def registry(fixed: bool = True) -> Registry:
    return load_plugins(frozenset(), extra_modules=[_plugin(fixed)])


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    started = Receiver(SECRET)
    await started.start()
    yield started
    await started.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as opened:
        yield opened


class Harness:
    """A store, a dispatcher over one `http` sink named `backend`, and the dead letters told."""

    def __init__(
        self, store: Store, loaded: LoadedConfig, clock: ManualClock, session: Any
    ) -> None:
        self.store, self.loaded, self.clock = store, loaded, clock
        self.told: list[DeadLetter] = []
        self.dispatcher = Dispatcher(
            store,
            loaded,
            registry(),
            clock=clock,
            notify=self.told.append,
            session=session,
            rng=random.Random(7),
            jitter=0.0,
        )

    async def ingest(self, *external_ids: str, total: str = "27500") -> None:
        records = [sale(external_id, total=total) for external_id in external_ids]
        routes = [self.loaded.sinks_for(r.outlet, r.kind) for r in records]
        await self.store.ingest(IngestRequest(records=records, routes=routes))

    async def drain(self, sink: str = "backend") -> int:
        return await self.dispatcher.drain_once(sink)

    async def outbox(self) -> list[Any]:
        return await self.store.list_outbox()


@pytest.fixture
async def harness(
    tmp_path: Path, store: Store, receiver: Receiver, session: aiohttp.ClientSession
) -> AsyncIterator[Harness]:
    loaded = configure(
        tmp_path, {"backend": {"type": "http", "url": receiver.url, "secret": SECRET}}
    )
    built = Harness(store, loaded, clock(store), session)
    receiver.now = lambda: built.clock.now().timestamp()
    await built.dispatcher.open()
    yield built
    await built.dispatcher.close()


# -- acceptance: signatures ----------------------------------------------------------------------


async def test_standardwebhooks_verifies_every_delivery_and_rejects_a_tampered_one(
    harness: Harness, receiver: Receiver
) -> None:
    verifier = Webhook(SECRET)
    receiver.verify = lambda body, headers: verifier.verify(body, headers)
    await harness.ingest("TRX-1", "TRX-2", "TRX-3")

    assert await harness.drain() == 3

    assert [r.verified for r in receiver.requests] == [True, True, True]
    keys = {row.idempotency_key for row in await harness.outbox()}
    assert {r.webhook_id for r in receiver.requests} == keys
    first = receiver.requests[0]
    assert first.payload["type"] == "transaction.updated"
    assert first.payload["data"]["external_id"] == "TRX-1"
    assert first.payload["data"]["total"] == "27500"
    tampered = first.body.replace(b"27500", b"2750")
    with pytest.raises(WebhookVerificationError):
        verifier.verify(tampered, first.headers)
    assert {row.status for row in await harness.outbox()} == {"delivered"}


# -- acceptance: receiver down, then up ----------------------------------------------------------


async def test_receiver_down_then_up_follows_the_schedule_and_loses_nothing(
    harness: Harness, receiver: Receiver
) -> None:
    await harness.ingest(*(f"TRX-{i}" for i in range(20)))
    receiver.answer_with(503, times=20)  # attempt 1 of each: down
    assert await harness.drain() == 20
    rows = await harness.outbox()
    start = harness.clock.now()
    assert {row.attempts for row in rows} == {1}
    assert {row.next_attempt_at for row in rows} == {start + timedelta(seconds=5)}

    assert await harness.drain() == 0, "nothing is due before the schedule says so"
    harness.clock.advance(5)
    receiver.answer_with(502, times=20)  # attempt 2: still down
    assert await harness.drain() == 20
    assert {r.next_attempt_at for r in await harness.outbox()} == {
        harness.clock.now() + timedelta(seconds=300)
    }

    harness.clock.advance(300)
    # Attempt 3: overloaded, asking for more than the schedule's 30 minutes.
    receiver.answer_with(429, times=20, headers={"Retry-After": "3600"})
    assert await harness.drain() == 20
    assert {r.next_attempt_at for r in await harness.outbox()} == {
        harness.clock.now() + timedelta(seconds=3600)
    }
    harness.clock.advance(1800)
    assert await harness.drain() == 0, "Retry-After is honoured over the shorter schedule"

    harness.clock.advance(1800)  # up again
    assert await harness.drain() == 20
    rows = await harness.outbox()
    assert {row.status for row in rows} == {"delivered"}
    assert {row.attempts for row in rows} == {4}
    # Every webhook-id was sent on every attempt and acknowledged exactly once.
    keys = {row.idempotency_key for row in rows}
    assert set(receiver.acknowledged) == keys
    assert set(receiver.acknowledged.values()) == {1}
    per_id: dict[str, int] = {}
    for request in receiver.requests:
        per_id[request.webhook_id] = per_id.get(request.webhook_id, 0) + 1
    assert set(per_id.values()) == {4}
    assert harness.told == []


async def test_connection_refused_and_timeouts_are_retried(
    tmp_path: Path, store: Store, session: aiohttp.ClientSession
) -> None:
    from sambung.testing.daemon import free_port

    url = f"http://127.0.0.1:{free_port()}/webhooks"  # nobody listens
    loaded = configure(tmp_path, {"backend": {"type": "http", "url": url, "secret": SECRET}})
    harness = Harness(store, loaded, clock(store), session)
    await harness.dispatcher.open()
    await harness.ingest("TRX-1")
    assert await harness.drain() == 1
    [row] = await harness.outbox()
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.next_attempt_at == harness.clock.now() + timedelta(seconds=5)
    await harness.dispatcher.close()


async def test_after_the_last_attempt_the_row_is_dead_lettered(
    harness: Harness, receiver: Receiver
) -> None:
    await harness.ingest("TRX-1")
    receiver.answer_with(500, times=len(DEFAULT_SCHEDULE), body="boom")
    for delay in (*DEFAULT_SCHEDULE[1:], None):
        assert await harness.drain() == 1
        if delay is not None:
            harness.clock.advance(delay)
    [row] = await harness.outbox()
    assert (row.status, row.attempts) == ("dead", 8)
    [entry] = harness.told
    assert entry.stage == "delivery" and entry.error_type == "RetriesExhausted"
    assert "HTTP 500: boom" in entry.error
    assert entry.outbox_id == row.id and entry.sink == "backend"


# -- acceptance: a 400 dead-letters at once; replay after the fix --------------------------------


async def test_a_400_dead_letters_at_once_and_replay_delivers_after_the_fix(
    harness: Harness, receiver: Receiver
) -> None:
    await harness.ingest("TRX-1")
    receiver.answer_with(400, body='{"error": "unknown outlet kemang"}')
    assert await harness.drain() == 1

    [row] = await harness.outbox()
    assert (row.status, row.attempts) == ("dead", 1)
    [entry] = harness.told
    assert entry.error_type == "DeliveryRejected"
    assert "unknown outlet kemang" in entry.error
    assert json.loads(entry.payload or "")["external_id"] == "TRX-1"

    dlq = DeadLetters(harness.store, harness.loaded, clock=harness.clock)
    [listed] = await dlq.find(DeadLetterFilter(stage="delivery"))
    assert listed.id == entry.id
    shown = await dlq.show(entry.id)
    assert shown is not None and shown["attempts"] == 1

    # The receiver is fixed (answers 2xx again); replay, twice: the second does nothing.
    [first] = await dlq.replay([entry.id])
    [second] = await dlq.replay([entry.id])
    assert (first.result, second.result) == ("requeued", "not_open")
    [row] = await harness.outbox()
    assert (row.status, row.attempts) == ("pending", 0)

    assert await harness.drain() == 1
    assert await harness.drain() == 0
    [row] = await harness.outbox()
    assert row.status == "delivered"
    assert receiver.acknowledged == {row.idempotency_key: 1}
    assert [r.webhook_id for r in receiver.requests] == [row.idempotency_key] * 2
    assert await dlq.find(DeadLetterFilter()) == []
    assert len(harness.told) == 1, "the hook fires once per new entry, not on replay"


async def test_an_ingest_dead_letter_replays_into_a_record_once_the_mapping_is_fixed(
    tmp_path: Path, store: Store
) -> None:
    broken = configure(tmp_path, {"books": {"type": "jsonl", "path": "out.jsonl"}}, fixed=False)
    told: list[DeadLetter] = []
    ingest = WebhookIngest(store, broken.sinks_for, clock(store), told.append)
    connection = broken.connections[0]
    connector = connection.connector(_context(connection))
    body = b'{"id": "T-9", "amount": "15000", "at": "2026-11-26T10:00:00"}'
    request = WebhookRequest(body=body, headers={"Content-Type": "application/json"})
    answer = await ingest.handle(connector, request, "application/json")
    assert answer.status == 422
    [entry] = told
    assert await store.list_records() == []

    # Still broken: the replay reports it and the entry stays open.
    dlq = DeadLetters(store, broken, clock=clock(store))
    [still] = await dlq.replay([entry.id])
    assert still.result == "still_failing" and "total" in (still.detail or "")

    # The corrected mapping is installed; the same entry now replays into a record.
    fixed = configure(tmp_path, {"books": {"type": "jsonl", "path": "out.jsonl"}}, fixed=True)
    dlq = DeadLetters(store, fixed, clock=clock(store))
    [outcome] = await dlq.replay([entry.id])
    [again] = await dlq.replay([entry.id])
    assert (outcome.result, again.result) == ("replayed", "not_open")
    [record] = await store.list_records()
    assert (record.external_id, record.source_system) == ("T-9", "tally")
    assert json.loads(record.payload)["total"] == "15000"
    [row] = await store.list_outbox()
    assert row.sink == "books"
    replayed = await store.get_dead_letter(entry.id)
    assert replayed is not None and replayed.status == "replayed"


async def test_a_replay_whose_connector_maps_into_another_outlet_stores_nothing(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = configure(tmp_path, {"books": {"type": "jsonl", "path": "out.jsonl"}}, fixed=False)
    told: list[DeadLetter] = []
    ingest = WebhookIngest(store, broken.sinks_for, clock(store), told.append)
    connector = broken.connections[0].connector(_context(broken.connections[0]))
    body = b'{"id": "T-9", "amount": "15000", "at": "2026-11-26T10:00:00"}'
    request = WebhookRequest(body=body, headers={"Content-Type": "application/json"})
    assert (await ingest.handle(connector, request, "application/json")).status == 422
    [entry] = told

    fixed = configure(tmp_path, {"books": {"type": "jsonl", "path": "out.jsonl"}}, fixed=True)
    cls = fixed.connections[0].connector
    parse = cls.parse

    def misrouted(self: Any, request: WebhookRequest) -> Any:
        event = parse(self, request)
        records = [r.model_copy(update={"outlet": "senopati"}) for r in event.records]
        return dataclasses.replace(event, records=records)

    monkeypatch.setattr(cls, "parse", misrouted)
    [outcome] = await DeadLetters(store, fixed, clock=clock(store)).replay([entry.id])

    assert outcome.result == "still_failing" and "senopati/tally" in (outcome.detail or "")
    assert await store.list_records() == []


def _context(connection: Any) -> Any:
    import structlog
    from sambung.connectors import ConnectorContext

    return ConnectorContext(
        outlet=connection.outlet, settings=connection.settings, log=structlog.get_logger()
    )


# -- ordering, 410, retention, jsonl ------------------------------------------------------------


async def test_a_newer_version_waits_for_the_older_one(
    harness: Harness, receiver: Receiver
) -> None:
    await harness.ingest("TRX-1", total="10000")
    receiver.answer_with(503)
    assert await harness.drain() == 1
    await harness.ingest("TRX-1", total="12000")  # revision 2 while revision 1 is pending

    harness.clock.advance(1)
    assert await harness.drain() == 0, "revision 2 must not overtake revision 1"
    harness.clock.advance(5)
    assert await harness.drain() == 1  # revision 1
    assert await harness.drain() == 1  # then revision 2
    delivered = [r.payload["data"]["total"] for r in receiver.requests if r.status == 204]
    assert delivered == ["10000", "12000"]


async def test_a_410_disables_the_sink_and_alerts(harness: Harness, receiver: Receiver) -> None:
    await harness.ingest("TRX-1", "TRX-2")
    receiver.answer_with(410, times=2)
    assert await harness.drain() == 2
    assert harness.dispatcher.sinks["backend"].disabled is not None
    assert {entry.error_type for entry in harness.told} == {"SinkGone"}
    await harness.ingest("TRX-3")
    assert await harness.drain() == 0, "a disabled sink sends nothing more"
    assert len(receiver.requests) == 2


async def test_delivered_rows_are_pruned_after_retention(
    tmp_path: Path, store: Store, receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    loaded = configure(
        tmp_path,
        {
            "backend": {
                "type": "http",
                "url": receiver.url,
                "secret": SECRET,
                "retention_hours": 24,
            }
        },
    )
    harness = Harness(store, loaded, clock(store), session)
    await harness.dispatcher.open()
    await harness.ingest("TRX-1", "TRX-2")
    assert await harness.drain() == 2
    assert await harness.dispatcher.prune() == 0
    harness.clock.advance(24 * 3600 + 1)
    assert await harness.dispatcher.prune() == 2
    assert await harness.outbox() == []
    await harness.dispatcher.close()


async def test_jsonl_appends_one_line_per_delivery_and_rotates(
    tmp_path: Path, store: Store, session: aiohttp.ClientSession
) -> None:
    loaded = configure(
        tmp_path,
        {"backend": {"type": "jsonl", "path": "out/records.jsonl", "max_bytes": 2048}},
    )
    harness = Harness(store, loaded, clock(store), session)
    await harness.dispatcher.open()
    await harness.ingest(*(f"TRX-{i}" for i in range(3)))
    assert await harness.drain() == 3
    lines = (tmp_path / "out/records.jsonl").read_text().splitlines()
    assert [json.loads(line)["data"]["external_id"] for line in lines] == [
        "TRX-0",
        "TRX-1",
        "TRX-2",
    ]
    await harness.ingest(*(f"TRX-{i}" for i in range(3, 12)))
    assert await harness.drain() == 9
    assert (tmp_path / "out/records.jsonl.1").exists()
    await harness.dispatcher.close()


def test_retry_policy_schedule_jitter_and_retry_after() -> None:
    rng = random.Random(1)
    exact = RetryPolicy(jitter=0.0)
    assert [exact.next_delay(n, None, rng) for n in range(1, 9)] == [
        5,
        300,
        1800,
        7200,
        18000,
        36000,
        36000,
        None,
    ]
    jittered = RetryPolicy()
    for _ in range(100):
        delay = jittered.next_delay(2, None, rng)
        assert delay is not None and 270 <= delay <= 330
    assert exact.next_delay(1, 60, rng) == 60
    assert exact.next_delay(1, 10**9, rng) == 24 * 3600


async def test_a_crash_mid_batch_redelivers_with_the_same_webhook_id(
    tmp_path: Path, receiver: Receiver, session: aiohttp.ClientSession, sambung_store_url: str
) -> None:
    """A claim survives the process: after restart the rows go out again, same ids."""
    store = open_store(sambung_store_url, base_dir=tmp_path, clock=ManualClock())
    await store.open()
    loaded = configure(
        tmp_path, {"backend": {"type": "http", "url": receiver.url, "secret": SECRET}}
    )
    harness = Harness(store, loaded, clock(store), session)
    await harness.ingest("TRX-1", "TRX-2")
    claimed = await store.claim_outbox(
        "backend", now=harness.clock.now(), limit=10, lease_seconds=300
    )
    assert len(claimed) == 2
    await store.close()  # the process died before settling

    # The restarted process (another owner: no replica id configured) finds the claims free
    # once they expired; on SQLite at once, as only one process uses the file.
    restarted = ManualClock()
    restarted.advance(301)
    receiver.now = lambda: restarted.now().timestamp()
    store = open_store(sambung_store_url, base_dir=tmp_path, clock=restarted)
    await store.open()
    harness = Harness(store, loaded, clock(store), session)
    await harness.dispatcher.open()
    assert await harness.drain() == 2
    assert receiver.seen_ids() == {row.idempotency_key for row in claimed}
    await harness.dispatcher.close()
    await store.close()


async def test_the_daemon_tells_the_dead_letter_hook_once_per_delivery_entry(
    tmp_path: Path, receiver: Receiver
) -> None:
    from sambung.runtime.daemon import Daemon

    told: list[DeadLetter] = []
    notifier = types.ModuleType("notifier")

    @hookimpl
    def sambung_dead_letter(entry: DeadLetter) -> None:
        told.append(entry)

    notifier.sambung_dead_letter = sambung_dead_letter  # type: ignore[attr-defined]
    document = {
        "store": {"url": "sqlite:///./daemon.db"},
        "server": {"public": {"host": "127.0.0.1", "port": 0}},
        "outlets": [{"id": "kemang", "name": "Kemang"}],
        "sinks": {"backend": {"type": "http", "url": receiver.url, "secret": SECRET}},
    }
    path = tmp_path / "sambung.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    plugins = load_plugins(frozenset(), extra_modules=[notifier])
    daemon = Daemon(load_config(path, plugins), plugins)
    receiver.answer_with(400, times=2, body="rejected")
    await daemon.start()
    try:
        records = [sale("TRX-1"), sale("TRX-2")]
        await daemon.store.ingest(IngestRequest(records=records, routes=[("backend",)] * 2))
        for _ in range(500):  # a bounded wait for the loop and the hook thread, not a timing
            if len(told) == 2:
                break
            await asyncio.sleep(0.01)
    finally:
        await daemon.stop()
    assert sorted(entry.error_type for entry in told) == ["DeliveryRejected"] * 2
    assert {entry.sink for entry in told} == {"backend"}


# -- claims fenced while a batch is out (issue 21) -----------------------------------------------


async def test_a_batch_whose_claims_cannot_be_renewed_stops_sending_before_they_can_pass_on(
    harness: Harness, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness.dispatcher.lease_seconds = 1.5  # renewed every 0.5 s, fenced 0.5 s before expiry
    await harness.ingest("TRX-1")
    receiver.answer_with(204, delay=5.0)  # the receiver hangs on to the delivery

    async def unreachable(*_args: Any, **_kwargs: Any) -> set[int]:
        raise StoreUnavailable("query failed: ConnectionDoesNotExistError")

    monkeypatch.setattr(harness.store, "renew_claims", unreachable)
    started = asyncio.get_running_loop().time()
    assert await harness.drain() == 1
    took = asyncio.get_running_loop().time() - started

    # Cut off at the fence (a third of a lease before the claim runs out), long before the
    # receiver answered: no second holder can be sending while this one still is.
    assert took < 1.4, took
    [row] = await harness.outbox()
    assert row.status == "pending" and row.attempts == 0  # not an attempt: it passes on unsent


async def test_a_batch_renews_its_claims_so_no_other_replica_takes_them_while_it_delivers(
    harness: Harness, receiver: Receiver, sambung_store_url: str, tmp_path: Path
) -> None:
    harness.dispatcher.lease_seconds = 1.5
    await harness.ingest("TRX-1")
    receiver.answer_with(204, delay=2.5)  # longer than the claim lasts unrenewed
    other = open_store(sambung_store_url, base_dir=tmp_path, owner="other", clock=harness.clock)
    await other.open()

    async def time_passes() -> None:  # the store's clock keeps pace with the real one
        while True:
            await asyncio.sleep(0.1)
            harness.clock.advance(0.1)

    async def another_replica_tries() -> list[Any]:
        await asyncio.sleep(2.0)  # past the first claim's expiry, not past its renewal's
        return await other.claim_outbox(
            "backend", now=harness.clock.now(), limit=10, lease_seconds=1.5
        )

    ticking = asyncio.create_task(time_passes())
    try:
        drained, taken = await asyncio.gather(harness.drain(), another_replica_tries())
    finally:
        ticking.cancel()
        await other.close()
    assert drained == 1 and taken == []
    [row] = await harness.outbox()
    assert row.status == "delivered" and row.attempts == 1


async def test_a_store_error_in_the_dispatcher_makes_its_loop_not_ready_and_it_recovers(
    tmp_path: Path, receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    """On SQLite: the store fails under the dispatcher (a locked, read-only moment) and then
    answers again: the loop is reported while it cannot work, and delivers again by itself."""
    from sambung.runtime.supervision import Loops
    from sambung.store.sqlite import SqliteStore

    store = SqliteStore(tmp_path / "sambung.db", synchronous="OFF", clock=ManualClock())
    await store.open()
    loaded = configure(
        tmp_path, {"backend": {"type": "http", "url": receiver.url, "secret": SECRET}}
    )
    harness = Harness(store, loaded, clock(store), session)
    receiver.now = lambda: harness.clock.now().timestamp()
    harness.dispatcher.lease_seconds = 3.0
    await harness.dispatcher.open()
    locked = False
    transaction = store._transaction

    def flaky(work: Any) -> Any:
        if locked:
            raise sqlite3.OperationalError("database is locked")
        return transaction(work)

    store._transaction = flaky  # type: ignore[method-assign]
    loops = Loops()
    try:
        harness.dispatcher.start(loops.start)
        await harness.ingest("TRX-1")
        await _eventually(lambda: len(receiver.seen_ids()) == 1)
        locked = True
        await harness.ingest("TRX-2", "TRX-3")  # ingest has its own path: it still commits
        await _eventually(lambda: "outbox.backend" in loops.problems())
        assert loops.problems()["outbox.backend"].startswith("down after a crash")
        await asyncio.sleep(4.0)  # a few failed restarts: crash-looping by now
        assert loops.problems()["outbox.backend"].startswith(("down", "crash-looping"))
        locked = False
        # Back within a second or so of the store answering (not after the growing restart
        # delays), and ready as soon as it completed a cycle (not a crash-loop window later).
        await _eventually(lambda: len(receiver.seen_ids()) == 3, within=3.0)
        await _eventually(lambda: loops.problems() == {}, within=3.0)
        assert {row.status for row in await harness.outbox()} == {"delivered"}
    finally:
        await loops.stop()
        await harness.dispatcher.close()
        await store.close()


async def _eventually(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Wait until `condition()` holds; fail after `within` seconds."""
    async with asyncio.timeout(within):
        while not condition():
            await asyncio.sleep(0.02)
