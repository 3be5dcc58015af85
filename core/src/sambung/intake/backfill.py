"""Backfill a window: re-poll [since, until) of one polled connection without a full resync.

A backfill is a durable task (`Backfill`, table `backfills`). The connection's own poll loop
runs it between its live runs (`PollLoop.run_forever` calls `BackfillService.run_due`), so it
runs under the loop's lease, through the loop's connector and thus its vendor account's rate
budget, and never beside a live run: a backfill never doubles the load on a vendor. Each page
commits its records and the task's progress (position, pages, new / changed / unchanged
records) in one transaction, so a daemon killed mid-way resumes from the last committed page.
The live cursor is never touched. Unchanged records queue nothing (the upsert fingerprint).

A backfill takes at most one poll interval at a time before the live poll runs again, and then
goes on. A poller that cannot stop at `until` (its vendor lists "changed since" only) is
stopped at its first page whose cursor reaches `until`. A poller that heals from what is
known (Midtrans) asks about the records known on the window's business dates (`known.within`).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sambung.connectors import PollWindow
from sambung.errors import AuthError, LeaseLost, NotPolled, RetriableError, UnknownConnection
from sambung.runtime import supervision
from sambung.runtime.replicas import ensure_lease
from sambung.store import (
    Backfill,
    BackfillProgress,
    BackfillState,
    BackfillStore,
    PollRun,
    RunOutcome,
)

from .connections import OperatorService, operator_instant, polled_connection, refusal
from .known import within
from .polling import from_cursor, to_cursor

if TYPE_CHECKING:
    from .polling import PollLoop

log = structlog.get_logger(__name__)


class BackfillService(OperatorService[BackfillStore]):
    """Backfill tasks: requested by an operator (CLI, admin API), run by the poll loops."""

    async def request(
        self, outlet: str, connector: str, since: datetime, until: datetime, requested_by: str
    ) -> Backfill:
        """Queue a backfill of [since, until) and wake the connection's loop to run it.

        Raises `UnknownConnection` / `NotPolled` for a connection that cannot be backfilled,
        `ValueError` for a window that is empty or lies in the future.
        """
        polled_connection(self.loaded(), outlet, connector)
        if since.tzinfo is None or until.tzinfo is None:
            raise ValueError("since and until must be aware datetimes")
        if until <= since:
            raise ValueError("until must be after since")
        now = self.clock.now()
        if since >= now:
            raise ValueError(f"since ({since.isoformat()}) is in the future")
        task = await self.store.create_backfill(
            outlet, connector, since, min(until, now), requested_by
        )
        log.info(
            "backfill.requested",
            backfill_id=task.id,
            outlet=outlet,
            connector=connector,
            since=to_cursor(task.since),
            until=to_cursor(task.until),
            requested_by=requested_by,
        )
        if self.wake is not None:
            self.wake(outlet, connector)
        return task

    async def request_text(
        self,
        outlet: str,
        connector: str,
        since: str,
        until: str | None,
        requested_by: str,
    ) -> Backfill:
        """`request` with the window as an operator types it: dates are the outlet's local
        days (`until` a date: to the end of that day), or ISO datetimes; `until` defaults to
        now."""
        connection = polled_connection(self.loaded(), outlet, connector)
        tz = connection.outlet.timezone
        start = operator_instant(since, tz)
        end = operator_instant(until, tz, end_of_day=True) if until else self.clock.now()
        return await self.request(outlet, connector, start, end, requested_by)

    async def get(self, backfill_id: int) -> Backfill | None:
        """One task."""
        return await self.store.get_backfill(backfill_id)

    async def list(
        self, outlet: str | None = None, connector: str | None = None, *, active: bool = False
    ) -> list[Backfill]:
        """Tasks, newest first."""
        return await self.store.list_backfills(outlet=outlet, connector=connector, active=active)

    async def cancel(self, backfill_id: int) -> Backfill | None:
        """Stop a queued or running task (its committed pages stay); None if unknown."""
        return await self.store.set_backfill_state(backfill_id, BackfillState.CANCELLED)

    # -- run by the poll loops ---------------------------------------------------------------

    async def run_due(self, loop: PollLoop, deadline: datetime) -> bool:
        """Run the loop's connection's backfills, oldest first, until `deadline`; whether
        work is left (the loop then goes on at once after its next live run)."""
        tasks = await self.store.list_backfills(
            outlet=loop.outlet, connector=loop.name, active=True
        )
        for task in reversed(tasks):  # listed newest first
            if await self._run(loop, task, deadline):
                return True
        return False

    async def _run(self, loop: PollLoop, task: Backfill, deadline: datetime) -> bool:
        """Run one slice of a task (`_slice`) and add it to the connection's recent runs."""
        started = self.clock.now()
        outcome, error = RunOutcome.OK, None
        try:
            more, error = await self._slice(loop, task, deadline)
            if error is not None:
                outcome = RunOutcome.FAILED
            return more
        except LeaseLost as err:
            outcome, error = RunOutcome.LEASE_LOST, str(err)
            raise
        finally:
            # One read per slice (not per page) gives what its pages committed.
            after = await self.store.get_backfill(task.id) or task
            await loop.record_run(
                PollRun(
                    loop.outlet,
                    loop.name,
                    "backfill",
                    started,
                    self.clock.now(),
                    outcome,
                    pages=after.pages - task.pages,
                    records_fetched=(
                        after.records_new
                        + after.records_changed
                        + after.records_unchanged
                        - task.records_new
                        - task.records_changed
                        - task.records_unchanged
                    ),
                    records_new=after.records_new - task.records_new,
                    records_changed=after.records_changed - task.records_changed,
                    error=error,
                    cursor_before=task.position,
                    cursor_after=after.position,
                )
            )

    async def _slice(
        self, loop: PollLoop, task: Backfill, deadline: datetime
    ) -> tuple[bool, str | None]:
        """Run one task on from its position; whether the deadline cut it short (a failing
        vendor or a cancel does not: the loop waits its interval as after a failed run), and
        the error that ended it, if one did."""
        bound = loop.log.bind(backfill_id=task.id)
        if task.state is BackfillState.QUEUED:
            bound.info("backfill.started", since=to_cursor(task.since), until=to_cursor(task.until))
            await self.store.set_backfill_state(task.id, BackfillState.RUNNING)
        elif task.position is not None:
            bound.info("backfill.resumed", position=task.position, pages=task.pages)
        try:
            finished = await self._pages(loop, task, deadline)
        except LeaseLost:
            raise  # the loop stops; the task resumes wherever the loop runs next
        except (RetriableError, AuthError) as err:
            # Passing: kept running, tried again next cycle from the last committed page (an
            # expired token is the live run's to refresh; in needs_reauth, backfills wait).
            message = f"{type(err).__name__}: {err}"
            bound.warning("backfill.retrying", error=message)
            await self.store.set_backfill_state(task.id, BackfillState.RUNNING, error=message)
            return False, message
        except Exception as err:  # RequestRejected, a connector bug: for good
            message = f"{type(err).__name__}: {err}"
            bound.error("backfill.failed", error=message)
            await self.store.set_backfill_state(task.id, BackfillState.FAILED, error=message)
            return False, message
        if finished is None:
            bound.info("backfill.cancelled")
            return False, None
        if not finished:
            return True, None
        done = await self.store.set_backfill_state(task.id, BackfillState.DONE)
        if done is not None:
            bound.info(
                "backfill.done",
                pages=done.pages,
                records_new=done.records_new,
                records_changed=done.records_changed,
                records_unchanged=done.records_unchanged,
            )
        return False, None

    async def _pages(self, loop: PollLoop, task: Backfill, deadline: datetime) -> bool | None:
        """Poll the rest of the window page by page: True once the window is done, False when
        the deadline stopped it, None when it was cancelled."""
        position = from_cursor(task.position)
        window = PollWindow(since=position or task.since, until=task.until)
        ensure_lease()
        pages: Any = loop.connector.poll(window)
        try:
            with within(task.since, task.until):
                async for page in pages:
                    if page.cursor is not None:
                        candidate = min(page.cursor, task.until)
                        if position is None or candidate > position:
                            position = candidate
                    progress = BackfillProgress(task.id, to_cursor(position) if position else None)
                    await loop.commit_page(page, backfill=progress)
                    supervision.cycle_done()  # a long backfill is progress, not a stall
                    ensure_lease()
                    if position is not None and position >= task.until:
                        return True  # a poller listing "changed since": the window is done
                    if await self._cancelled(task.id):
                        return None
                    if self.clock.now() >= deadline:
                        return False
        finally:
            await pages.aclose()
        return True

    async def _cancelled(self, backfill_id: int) -> bool:
        found = await self.store.get_backfill(backfill_id)
        return found is None or found.state is BackfillState.CANCELLED


# How many finished backfills status shows beside the running ones.
RECENT = 5


async def backfill_status(store: BackfillStore) -> list[dict[str, Any]]:
    """The backfills `status` shows: every queued or running one, then the latest finished."""
    active = await store.list_backfills(active=True)
    recent = [t for t in await store.list_backfills(limit=len(active) + RECENT) if not t.active]
    return [describe(task) for task in [*active, *recent[:RECENT]]]


def describe(task: Backfill) -> dict[str, Any]:
    """A task as the admin API and `sambung backfill` show it."""
    return {
        "id": task.id,
        "outlet": task.outlet,
        "connector": task.connector,
        "since": task.since.isoformat(),
        "until": task.until.isoformat(),
        "state": task.state.value,
        "position": task.position,
        "pages": task.pages,
        "records_new": task.records_new,
        "records_changed": task.records_changed,
        "records_unchanged": task.records_unchanged,
        "error": task.error,
        "requested_by": task.requested_by,
        "created_at": task.created_at.isoformat(),
        "started_at": task.started_at.isoformat() if task.started_at else None,
        "finished_at": task.finished_at.isoformat() if task.finished_at else None,
    }


class _BackfillBody(BaseModel):
    """`POST .../backfill`: the window (dates or ISO datetimes), and optionally who asks."""

    model_config = ConfigDict(extra="forbid")

    since: str = Field(min_length=1, max_length=64)
    until: str | None = Field(None, min_length=1, max_length=64)
    requested_by: str = Field("admin-api", min_length=1, max_length=100)


BACKFILLS_KEY: web.AppKey[BackfillService] = web.AppKey("backfills", BackfillService)


def add_backfill_routes(app: web.Application, service: BackfillService) -> None:
    """Mount `POST /api/v1/connections/{outlet}/{connector}/backfill`, `GET /api/v1/backfills`
    (`?outlet=&connector=&active=true`), `GET` and `DELETE` (cancel) `/api/v1/backfills/{id}`
    on the admin app."""
    app[BACKFILLS_KEY] = service
    app.router.add_post("/api/v1/connections/{outlet}/{connector}/backfill", _request)
    app.router.add_get("/api/v1/backfills", _list)
    app.router.add_get("/api/v1/backfills/{id:\\d+}", _show)
    app.router.add_delete("/api/v1/backfills/{id:\\d+}", _cancel)


async def _request(request: web.Request) -> web.Response:
    outlet, connector = request.match_info["outlet"], request.match_info["connector"]
    try:
        body = _BackfillBody.model_validate_json(await request.read() or b"{}")
        task = await request.app[BACKFILLS_KEY].request_text(
            outlet, connector, body.since, body.until, body.requested_by
        )
    except (UnknownConnection, NotPolled, ValidationError, ValueError) as err:
        return refusal(err)
    return web.json_response(describe(task), status=202)


async def _list(request: web.Request) -> web.Response:
    query = request.query
    tasks = await request.app[BACKFILLS_KEY].list(
        query.get("outlet"), query.get("connector"), active=query.get("active") == "true"
    )
    return web.json_response({"backfills": [describe(task) for task in tasks]})


def _not_found(backfill_id: int) -> web.Response:
    body = {"success": False, "error": "not_found", "message": f"no backfill {backfill_id}"}
    return web.json_response(body, status=404)


async def _show(request: web.Request) -> web.Response:
    backfill_id = int(request.match_info["id"])
    task = await request.app[BACKFILLS_KEY].get(backfill_id)
    return web.json_response(describe(task)) if task else _not_found(backfill_id)


async def _cancel(request: web.Request) -> web.Response:
    backfill_id = int(request.match_info["id"])
    task = await request.app[BACKFILLS_KEY].cancel(backfill_id)
    return web.json_response(describe(task)) if task else _not_found(backfill_id)
