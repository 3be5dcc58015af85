"""Webhook ingestion: verify, parse, map, commit, and only then answer 200.

Every answer is decided here, from the typed errors: unsigned → 401 with nothing stored; not JSON
→ 400 and unmappable → 422, both with the raw body kept in the DLQ; store down → 503 so the
vendor retries. Nothing the sender controls can produce a 500.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from sambung import metrics
from sambung.clock import Clock
from sambung.config import WEBHOOK_PATH
from sambung.connectors import ConnectorSettings, WebhookConnector, WebhookRequest
from sambung.errors import InvalidPayload, InvalidRecord, SignatureError, StoreUnavailable
from sambung.store import DeadLetter, IngestRequest, IngestStore, Outcome, RawEvent
from sambung.store.base import printable

from .guard import ensure_own, rejection

Routes = Callable[[str, str], Sequence[str]]
DeadLetterNotifier = Callable[[DeadLetter], None]


@dataclass(frozen=True)
class Answer:
    """An HTTP answer to a webhook: status and JSON body."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] | None = None


def _error(status: int, error: str, message: str, **extra: Any) -> Answer:
    return Answer(status, {"success": False, "error": error, "message": message, **extra})


class WebhookIngest:
    """Turns one verified-or-not webhook into a committed write and an answer."""

    def __init__(
        self, store: IngestStore, routes: Routes, clock: Clock, notify: DeadLetterNotifier
    ) -> None:
        self._store = store
        self._routes = routes
        self._clock = clock
        self._notify = notify

    async def handle(
        self,
        connector: WebhookConnector[ConnectorSettings],
        request: WebhookRequest,
        content_type: str | None,
    ) -> Answer:
        """Answer one webhook delivered to `connector`."""
        source, log = connector.name, connector.log
        try:
            connector.verify(request)
        except SignatureError as err:
            log.warning("webhook.unauthorized", reason=str(err))
            return _error(401, "unauthorized", "signature missing or invalid")
        except Exception as err:  # a verifier that crashes has not verified anything
            log.exception("webhook.verify_crashed", error=f"{type(err).__name__}: {err}")
            return _error(401, "unauthorized", "signature could not be verified")

        received_at = self._clock.now()
        content_type = content_type and printable(content_type)

        def raw_event(dedup_key: str | None = None, event_type: str | None = None) -> RawEvent:
            # Built once, when what it holds is known: a dataclass replace() per webhook costs.
            return RawEvent(
                outlet=connector.outlet.id,
                source_system=source,
                channel="webhook",
                dedup_key=dedup_key or request.body_sha256,
                body=request.body,
                received_at=received_at,
                content_type=content_type,
                event_type=event_type,
            )

        try:
            request.payload  # noqa: B018 - parse once here so "not JSON" is told apart
            event = connector.parse(request)
            ensure_own(
                ((r.outlet, r.source_system) for r in event.records),
                connector.outlet.id,
                connector.name,
            )
        except InvalidPayload as err:
            return await self._dead_letter(
                connector, raw_event(), 400, "invalid_payload", err, None
            )
        except InvalidRecord as err:
            return await self._dead_letter(
                connector, raw_event(), 422, "invalid_record", err, err.field
            )
        except ValidationError as err:
            field = _first_field(err)
            return await self._dead_letter(
                connector, raw_event(), 422, "invalid_record", err, field
            )
        except Exception as err:  # a mapping bug: keep the body so it replays once fixed
            log.exception("webhook.mapping_crashed", error=f"{type(err).__name__}: {err}")
            return await self._dead_letter(connector, raw_event(), 422, "mapping_failed", err, None)

        raw = raw_event(event.dedup_key, event.event_type)
        routes = [self._routes(connector.outlet.id, record.kind) for record in event.records]
        try:
            result = await self._store.ingest(
                IngestRequest(raw=raw, records=event.records, routes=routes)
            )
        except InvalidRecord as err:  # text the store cannot keep: the sender's, kept as sent
            return await self._dead_letter(connector, raw_event(), 422, "invalid_record", err, None)
        except StoreUnavailable as err:
            log.error("webhook.store_unavailable", error=str(err))
            return _unavailable()

        outcomes = [r.outcome for r in result.records]
        for outcome in outcomes:
            metrics.child(metrics.RECORDS_INGESTED, source, "webhook", outcome.value).inc()
        # A duplicate changes nothing: every record already stored with this very content.
        duplicate = (
            all(o is Outcome.UNCHANGED for o in outcomes) if outcomes else result.raw_duplicate
        )
        stale = Outcome.STALE in outcomes
        ids = [r.id for r in result.records]
        log.info(
            "webhook.accepted",
            event_type=event.event_type,
            external_ids=[record.external_id for record in event.records],
            outcomes=[o.value for o in outcomes],
            outbox_rows=result.outbox_rows,
        )
        body: dict[str, Any] = {
            "success": True,
            "internal_id": ids[0] if ids else None,
            "internal_ids": ids,
            "event_type": event.event_type,
            "duplicate": duplicate,
        }
        if stale:
            body["stale"] = True  # an older version than the one stored: acknowledged, ignored
        return Answer(200, body)

    async def _dead_letter(
        self,
        connector: WebhookConnector[ConnectorSettings],
        raw: RawEvent,
        status: int,
        error: str,
        err: Exception,
        field: str | None,
    ) -> Answer:
        # The reason may quote the sender's text: keep it storable, whatever that text held.
        reason, field = printable(_reason(err)), field and printable(field)
        entry = rejection(
            "ingest",
            connector.outlet.id,
            connector.name,
            error_type=type(err).__name__,
            error=reason,
            field=field,
        )
        try:
            result = await self._store.ingest(IngestRequest(raw=raw, dead_letter=entry))
        except StoreUnavailable as store_err:
            connector.log.error("webhook.store_unavailable", error=str(store_err))
            return _unavailable()
        connector.log.warning(
            "webhook.dead_lettered",
            status=status,
            error=reason,
            field=field,
            raw_event_id=result.raw_event_id,
        )
        if result.dead_letter_id is not None:
            metrics.child(metrics.DEAD_LETTERS, "ingest", connector.name).inc()
            self._notify(
                DeadLetter(
                    id=result.dead_letter_id,
                    stage=entry.stage,
                    outlet=entry.outlet,
                    connector=entry.connector,
                    error_type=entry.error_type,
                    error=entry.error,
                    field=field,
                    raw_event_id=result.raw_event_id,
                    payload=None,
                    status="open",
                    created_at=raw.received_at,
                )
            )
        extra = {"field": field} if field else {}
        return _error(
            status,
            error,
            reason,
            dead_letter_id=result.dead_letter_id,
            raw_event_id=result.raw_event_id,
            **extra,
        )


def _unavailable() -> Answer:
    return Answer(
        503,
        {
            "success": False,
            "error": "unavailable",
            "message": "could not store the event; retry later",
        },
        headers={"Retry-After": "5"},
    )


def _first_field(err: ValidationError) -> str | None:
    errors = err.errors(include_url=False)
    return ".".join(str(step) for step in errors[0]["loc"]) if errors else None


def _reason(err: Exception) -> str:
    if isinstance(err, ValidationError):
        first = err.errors(include_url=False)[0]
        return f"{'.'.join(str(s) for s in first['loc'])}: {first['msg']}"
    if isinstance(err, InvalidRecord | InvalidPayload):
        return str(err)
    return f"{type(err).__name__}: {err}"


# -- the aiohttp side -------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookTargets:
    """Which connector instance answers `/webhooks/{source_system}[/{outlet}]`."""

    by_outlet: dict[tuple[str, str], WebhookConnector[ConnectorSettings]]

    def resolve(
        self, source_system: str, outlet: str | None
    ) -> WebhookConnector[ConnectorSettings] | Answer:
        """The connector for a path, or the 404 that explains why there is none."""
        if outlet is not None:
            connector = self.by_outlet.get((source_system, outlet))
            if connector is None:
                return _error(
                    404, "not_found", f"no outlet {outlet!r} receives {source_system} webhooks"
                )
            return connector
        candidates = [c for (s, _), c in self.by_outlet.items() if s == source_system]
        if not candidates:
            return _error(404, "not_found", f"no outlet receives {source_system} webhooks")
        if len(candidates) > 1:
            outlets = sorted(c.outlet.id for c in candidates)
            return _error(
                404,
                "outlet_required",
                f"several outlets receive {source_system} webhooks; post to "
                f"{WEBHOOK_PATH}/{source_system}/{{outlet}}",
                outlets=outlets,
            )
        return candidates[0]


INGEST_KEY = web.AppKey("webhook_ingest", WebhookIngest)
TARGETS_KEY = web.AppKey("webhook_targets", WebhookTargets)
MAX_BODY_KEY = web.AppKey("max_body_bytes", int)


async def webhook_handler(request: web.Request) -> web.Response:
    """`POST /api/v1/integrations/webhooks/{source_system}[/{outlet}]`."""
    started = time.perf_counter()
    source = request.match_info["source_system"]
    target = request.app[TARGETS_KEY].resolve(source, request.match_info.get("outlet"))
    if isinstance(target, Answer):
        answer = target
    else:
        answer = await _read_and_ingest(request, target)
        elapsed = time.perf_counter() - started
        metrics.child(metrics.WEBHOOK_SECONDS, source).observe(elapsed)
        metrics.child(metrics.SYNC_SECONDS, source).observe(elapsed)
        status = "success" if answer.status == 200 else "failure"
        metrics.child(metrics.SYNC_TOTAL, source, status).inc()
    metrics.child(metrics.WEBHOOK_REQUESTS, source, _outcome(answer)).inc()
    return web.json_response(answer.body, status=answer.status, headers=answer.headers)


async def _read_and_ingest(
    request: web.Request, connector: WebhookConnector[ConnectorSettings]
) -> Answer:
    limit = request.app[MAX_BODY_KEY]
    too_large = _error(413, "too_large", f"body exceeds {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        connector.log.warning("webhook.too_large", content_length=request.content_length)
        return too_large
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        connector.log.warning("webhook.too_large", content_length=None)
        return too_large
    webhook = WebhookRequest(body=body, headers=request.headers, query=request.query)
    # No shield needed: a write handed to the store is committed whether or not this handler is
    # still waiting for it (aiohttp does not cancel handlers when a client hangs up).
    return await request.app[INGEST_KEY].handle(connector, webhook, request.content_type or None)


def _outcome(answer: Answer) -> str:
    if answer.status == 200:
        return "duplicate" if answer.body.get("duplicate") else "accepted"
    return str(answer.body.get("error", answer.status))


def add_webhook_routes(app: web.Application) -> None:
    """Mount the webhook endpoints on the public app."""
    app.router.add_post(WEBHOOK_PATH + "/{source_system}", webhook_handler)
    app.router.add_post(WEBHOOK_PATH + "/{source_system}/{outlet}", webhook_handler)


__all__ = ["Answer", "WebhookIngest", "WebhookTargets", "add_webhook_routes"]
