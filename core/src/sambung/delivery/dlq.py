"""Dead letters for every stage: list, show, replay and discard them.

The CLI (`sambung dlq …`) and the admin API call the same `DeadLetters` service. A delivery
entry replays by putting its outbox row back to pending with attempts reset; an ingest entry
replays by mapping its stored raw body again with the connector installed *now* (the fix after
a mapping bug). Replaying an entry that is no longer open does nothing, so replays are
idempotent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

import structlog
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sambung import metrics
from sambung.clock import Clock
from sambung.config import LoadedConfig
from sambung.connectors import (
    Connector,
    ConnectorContext,
    ConnectorSettings,
    FileDropConnector,
    WebhookConnector,
    WebhookRequest,
)
from sambung.delivery.attempts import describe_attempt
from sambung.errors import InvalidRecord
from sambung.intake.csvbatches import remap_row
from sambung.intake.csvfiles import RowError
from sambung.intake.guard import ensure_own
from sambung.models import Record
from sambung.store import DeadLetter, IngestRequest, ReplayStore
from sambung.store.base import DeadLetterQuery
from sambung.validation import request_problem

from .redrive import (
    LiveSinks,
    RedriveGroup,
    Remapped,
    ReplayTally,
    group_entries,
    plan_redrive,
    tally,
)

log = structlog.get_logger(__name__)

ReplayResult = Literal[
    "requeued", "replayed", "discarded", "still_failing", "not_open", "not_found", "unsupported"
]


@dataclass(frozen=True)
class ReplayOutcome:
    """What replaying one entry did."""

    id: int
    result: ReplayResult
    detail: str | None = None


class DeadLetterFilter(BaseModel):
    """Filters for listing and bulk replay, as the CLI and the API take them."""

    model_config = ConfigDict(extra="forbid")

    stage: Literal["ingest", "row", "delivery"] | None = None
    outlet: str | None = None
    connector: str | None = None
    since: datetime | None = None
    status: Literal["open", "replayed", "discarded"] | None = "open"
    limit: int = Field(100, ge=1, le=100_000)
    sink: str | None = None
    error_type: str | None = None

    def query(self) -> DeadLetterQuery:
        """The store's query for these filters."""
        return DeadLetterQuery(**self.model_dump())


class DeadLetters:
    """The dead-letter operations, over one store and the configuration installed now."""

    def __init__(
        self,
        store: ReplayStore,
        loaded: LoadedConfig,
        *,
        clock: Clock,
        live: Callable[[], LiveSinks] | None = None,
    ) -> None:
        self.store = store
        self.loaded = loaded
        self.clock = clock
        # The running daemon's view of its sinks (paused, disabled), for dry runs: its
        # dispatcher's, or what its admin API told a CLI process; none when not known.
        self.live = live or dict

    async def find(self, filters: DeadLetterFilter) -> list[DeadLetter]:
        """Entries matching `filters`, newest first."""
        return await self.store.find_dead_letters(filters.query())

    async def show(self, dead_letter_id: int) -> dict[str, Any] | None:
        """One entry with its payload (the raw body for an ingest entry) and, for a delivery
        entry, its row's kept attempts, as plain data."""
        entry = await self.store.get_dead_letter(dead_letter_id)
        if entry is None:
            return None
        shown = describe(entry)
        if entry.outbox_id is not None:
            attempts = await self.store.list_delivery_attempts(entry.outbox_id)
            # Not `attempts`: that key is the entry's own count, and stays what it was.
            shown["delivery_attempts"] = [describe_attempt(a) for a in attempts]
        if entry.raw_event_id is not None and entry.payload is None:
            raw = await self.store.get_raw_event(entry.raw_event_id)
            if raw is not None:
                shown["payload"] = raw.body.decode("utf-8", errors="replace")
        return shown

    async def replay(self, ids: list[int]) -> list[ReplayOutcome]:
        """Replay each entry; the outcomes in the same order."""
        return [await self._replay_one(dead_letter_id) for dead_letter_id in ids]

    async def replay_matching(self, filters: DeadLetterFilter) -> list[ReplayOutcome]:
        """Replay every open entry matching `filters`, oldest first."""
        entries = await self.store.find_dead_letters(
            filters.model_copy(update={"status": "open"}).query()
        )
        return await self.replay([entry.id for entry in reversed(entries)])

    async def open_entries(self, filters: DeadLetterFilter) -> list[DeadLetter]:
        """The open entries matching `filters`."""
        return await self.find(filters.model_copy(update={"status": "open"}))

    async def entries(self, ids: list[int]) -> list[DeadLetter]:
        """The open entries among `ids` (unknown or closed ones left out)."""
        found = [await self.store.get_dead_letter(i) for i in ids]
        return [entry for entry in found if entry is not None and entry.status == "open"]

    async def plan(self, entries: list[DeadLetter]) -> list[RedriveGroup]:
        """`entries` grouped by stage, connector or sink, and error class, with what a replay
        of each would do now; changes nothing."""
        return await plan_redrive(self, entries, live=self.live())

    async def replay_grouped(
        self, entries: list[DeadLetter]
    ) -> tuple[list[ReplayOutcome], list[ReplayTally]]:
        """Replay `entries` group by group; the outcomes, and per group what they came to."""
        ordered = [entry for group in group_entries(entries).values() for entry in group]
        outcomes = await self.replay([entry.id for entry in ordered])
        return outcomes, tally(entries, outcomes)

    async def discard(self, ids: list[int]) -> list[ReplayOutcome]:
        """Mark entries discarded: kept for audit, never replayed."""
        outcomes = []
        for dead_letter_id in ids:
            done = await self.store.resolve_dead_letter(dead_letter_id, "discarded")
            outcomes.append(ReplayOutcome(dead_letter_id, "discarded" if done else "not_open"))
            if done:
                log.info("dlq.discarded", dead_letter_id=dead_letter_id)
        return outcomes

    async def _replay_one(self, dead_letter_id: int) -> ReplayOutcome:
        entry = await self.store.get_dead_letter(dead_letter_id)
        if entry is None:
            return ReplayOutcome(dead_letter_id, "not_found")
        if entry.status != "open":
            return ReplayOutcome(dead_letter_id, "not_open", entry.status)
        if entry.stage == "delivery":
            if not await self.store.requeue_dead_letter(dead_letter_id, now=self.clock.now()):
                return ReplayOutcome(dead_letter_id, "not_open")
            log.info("dlq.requeued", dead_letter_id=dead_letter_id, outbox_id=entry.outbox_id)
            return ReplayOutcome(dead_letter_id, "requeued")
        if entry.stage in ("ingest", "row") and entry.raw_event_id is not None:
            remapped = await self.remap(entry)
            if remapped.result == "mapped":
                return await self._commit_replayed(entry, list(remapped.records))
            if remapped.result == "still_failing":
                return self._still_failing(entry, remapped.detail or "")
            return ReplayOutcome(entry.id, remapped.result, remapped.detail)
        return ReplayOutcome(
            dead_letter_id, "unsupported", f"replay of {entry.stage} entries is not available"
        )

    async def remap(self, entry: DeadLetter) -> Remapped:
        """Map an ingest or row entry's kept body again with the connector configured now, as
        a replay would, and write nothing: what a replay commits, or why it still fails."""
        if entry.raw_event_id is None or entry.stage not in ("ingest", "row"):
            return Remapped("unsupported", f"replay of {entry.stage} entries is not available")
        if entry.stage == "ingest":
            connector: Connector[ConnectorSettings] | None = self._connector(
                entry.outlet, entry.connector
            )
            if connector is None:
                return Remapped(
                    "unsupported", f"no webhook connector {entry.connector} at {entry.outlet}"
                )
        else:
            connector = self._instance(entry.outlet, entry.connector)
            if not isinstance(connector, FileDropConnector):
                return Remapped(
                    "unsupported", f"no file-drop connector {entry.connector} at {entry.outlet}"
                )
        raw = await self.store.get_raw_event(entry.raw_event_id)
        if raw is None:
            return Remapped("not_found", "the raw event is gone")
        if entry.stage == "ingest":  # by the stage: one connector class may have both modes
            assert isinstance(connector, WebhookConnector)
            headers = CIMultiDictProxy(CIMultiDict({"Content-Type": raw.content_type or ""}))
            # Already authenticated when it arrived; this is our own stored copy: no verify().
            try:
                records = list(
                    connector.parse(WebhookRequest(body=raw.body, headers=headers)).records
                )
            except Exception as err:  # whatever the mapping raises, the entry stays open
                return Remapped("still_failing", f"{type(err).__name__}: {err}")
        else:
            assert isinstance(connector, FileDropConnector)
            try:
                mapped = remap_row(
                    connector, raw.body, _parameter(raw.content_type, "number-style")
                )
            except Exception as err:  # a row still unreadable, whatever the reason, stays open
                return Remapped("still_failing", f"{type(err).__name__}: {err}")
            failures = [item for item in mapped if isinstance(item, RowError)]
            records = [item for item in mapped if not isinstance(item, RowError)]
            if failures or not records:
                reason = failures[0].reason if failures else "the kept row maps to no record"
                return Remapped("still_failing", reason)
        try:
            # A replay is intake too: the connector's records are its own outlet's, or none is.
            ensure_own(
                ((r.outlet, r.source_system) for r in records), entry.outlet, entry.connector
            )
        except InvalidRecord as err:
            return Remapped("still_failing", str(err))
        return Remapped("mapped", f"{len(records)} record(s)", tuple(records))

    def _still_failing(self, entry: DeadLetter, detail: str) -> ReplayOutcome:
        log.warning("dlq.replay_still_failing", dead_letter_id=entry.id, error=detail)
        return ReplayOutcome(entry.id, "still_failing", detail)

    async def _commit_replayed(self, entry: DeadLetter, records: list[Record]) -> ReplayOutcome:
        """Commit what a replay mapped, then mark the entry replayed."""
        routes = [self.loaded.sinks_for(entry.outlet, record.kind) for record in records]
        try:
            result = await self.store.ingest(IngestRequest(records=records, routes=routes))
        except InvalidRecord as err:  # text no store keeps (a lone surrogate): failing as before
            return self._still_failing(entry, str(err))
        for outcome in result.records:
            metrics.child(
                metrics.RECORDS_INGESTED, entry.connector, "replay", outcome.outcome.value
            ).inc()
        await self.store.resolve_dead_letter(entry.id, "replayed")
        log.info(
            "dlq.replayed",
            dead_letter_id=entry.id,
            records=[r.id for r in result.records],
            outbox_rows=result.outbox_rows,
        )
        return ReplayOutcome(entry.id, "replayed", f"{len(result.records)} record(s)")

    def _connector(self, outlet: str, name: str) -> WebhookConnector[ConnectorSettings] | None:
        instance = self._instance(outlet, name)
        return instance if isinstance(instance, WebhookConnector) else None

    def _instance(self, outlet: str, name: str) -> Connector[ConnectorSettings] | None:
        """The connector configured now at `outlet`, as core builds it."""
        for connection in self.loaded.connections:
            if connection.outlet.id == outlet and connection.name == name:
                bound = log.bind(outlet=outlet, connector=name)
                context = ConnectorContext(
                    outlet=connection.outlet,
                    settings=connection.settings,
                    log=bound,
                    clock=self.clock,
                )
                return connection.connector(context)
        return None


def _parameter(content_type: str | None, name: str) -> str | None:
    """A parameter of a media type (`text/csv; number-style=id` → `id`)."""
    for part in (content_type or "").split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key == name:
            return value or None
    return None


def describe(entry: DeadLetter) -> dict[str, Any]:
    """A dead letter as JSON-ready data."""
    data = asdict(entry)
    data["created_at"] = entry.created_at.isoformat()
    return data


# -- the admin API ------------------------------------------------------------------------------


class _ReplayBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[int] = Field(default_factory=list)
    all: bool = False
    filters: DeadLetterFilter = DeadLetterFilter()
    # Say per group what a replay would do now, and change nothing.
    dry_run: bool = False


DLQ_KEY: web.AppKey[DeadLetters] = web.AppKey("dead_letters", DeadLetters)


def add_dead_letter_routes(app: web.Application, service: DeadLetters) -> None:
    """Mount `/api/v1/dead-letters` (list, show, replay, discard) on the admin app."""
    app[DLQ_KEY] = service
    app.router.add_get("/api/v1/dead-letters", _list)
    app.router.add_get("/api/v1/dead-letters/{id:\\d+}", _show)
    app.router.add_post("/api/v1/dead-letters/replay", _replay)
    app.router.add_post("/api/v1/dead-letters/discard", _discard)


def _bad_request(
    err: ValidationError | ValueError, model: type[BaseModel] | None = None
) -> web.Response:
    return web.json_response(request_problem(err, model), status=400)


class _Grouping(BaseModel):
    model_config = ConfigDict(extra="ignore")

    group: bool = False


async def _list(request: web.Request) -> web.Response:
    query = dict(request.query)
    try:
        grouped = _Grouping.model_validate(query).group
        query.pop("group", None)
        filters = DeadLetterFilter.model_validate(query)
    except ValidationError as err:
        return _bad_request(err, DeadLetterFilter)
    service = request.app[DLQ_KEY]
    if grouped:  # open entries only: the groups are what a redrive would take
        groups = await service.plan(await service.open_entries(filters))
        return web.json_response({"groups": [g.describe() for g in groups]})
    entries = await service.find(filters)
    return web.json_response({"dead_letters": [describe(e) for e in entries]})


async def _show(request: web.Request) -> web.Response:
    shown = await request.app[DLQ_KEY].show(int(request.match_info["id"]))
    if shown is None:
        return web.json_response({"success": False, "error": "not_found"}, status=404)
    return web.json_response(shown)


async def _read_body(request: web.Request) -> _ReplayBody:
    return _ReplayBody.model_validate_json(await request.read() or b"{}")


async def _replay(request: web.Request) -> web.Response:
    try:
        body = await _read_body(request)
    except ValidationError as err:
        return _bad_request(err, _ReplayBody)
    service = request.app[DLQ_KEY]
    if body.all:
        entries = await service.open_entries(body.filters)
    elif body.ids:
        entries = await service.entries(body.ids)
    else:
        return _bad_request(ValueError("give ids, or all: true with optional filters"))
    if body.dry_run:
        groups = await service.plan(entries)
        return web.json_response({"dry_run": True, "groups": [g.describe() for g in groups]})
    if body.all:
        outcomes, tallies = await service.replay_grouped(entries)
    else:  # by id: each id answered, in the order given, unknown and closed ones included
        outcomes = await service.replay(body.ids)
        tallies = tally(entries, outcomes)
    return web.json_response(
        {"results": [asdict(o) for o in outcomes], "groups": [t.describe() for t in tallies]}
    )


async def _discard(request: web.Request) -> web.Response:
    try:
        body = await _read_body(request)
    except ValidationError as err:
        return _bad_request(err, _ReplayBody)
    outcomes = await request.app[DLQ_KEY].discard(body.ids)
    return web.json_response({"results": [asdict(o) for o in outcomes]})
