"""The operator console's routes on the admin listener: sign-in, pages and their actions.

Every page needs a session (see `session.py`); every POST also its CSRF token. The JSON API
beside it keeps its bearer token: the admin app's guard lets only the console's own paths
through to the console's checks (`is_console_path`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from importlib.resources import files
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp_jinja2
import jinja2
import structlog
from aiohttp import web
from aiohttp.web_request import FileField
from multidict import MultiDictProxy
from pydantic import ValidationError

from sambung import __version__
from sambung.auth.connect import start_connect
from sambung.auth.oauth import SINK_OUTLET
from sambung.delivery.attempts import DeliveryAttempts
from sambung.delivery.dlq import DeadLetterFilter
from sambung.delivery.reconciliation import ReconciliationQuery
from sambung.errors import ConfigError, NotPolled, UnknownConnection
from sambung.intake.upload import upload_csv
from sambung.models import RECORD_KINDS
from sambung.runtime.status import age, loop_status
from sambung.store import RecordQuery

from . import views
from .i18n import LANG_COOKIE, LANGUAGES, language_of, translator
from .session import (
    CSRF_FIELD,
    CSRF_HEADER,
    SESSION_TTL,
    Session,
    Sessions,
    clear_cookie,
    csrf_ok,
    set_cookie,
)

log = structlog.get_logger(__name__)

PREFIX = "/console"
STATIC = files("sambung.console") / "static"
STATIC_TYPES = {".css": "text/css", ".js": "text/javascript"}
# The verdicts of a dry run that a replay acts on (the others would change nothing now).
REPLAYABLE = ("would_replay", "would_requeue")
# Pages may load only what the daemon itself serves: no CDN, nothing inline.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclasses.dataclass(frozen=True)
class Console:
    """The console's state on the admin app: the daemon it shows and the signed-in sessions."""

    host: views.ConsoleHost
    sessions: Sessions


CONSOLE_KEY: web.AppKey[Console] = web.AppKey("console", Console)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Guarded = Callable[[web.Request, Session], Awaitable[web.StreamResponse]]


def is_console_path(path: str) -> bool:
    """Whether the console answers `path` (and checks its session itself)."""
    return path == "/" or path == PREFIX or path.startswith(PREFIX + "/")


def add_console(app: web.Application, host: views.ConsoleHost, token: str) -> None:
    """Mount the console at `/` and `/console/…` on the admin app."""
    app[CONSOLE_KEY] = Console(host, Sessions(token, host.clock))
    environment = aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("sambung.console", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters.update(money=money, age=age)
    environment.globals.update(progress=views.backfill_progress)
    get, post = app.router.add_get, app.router.add_post
    get("/", guarded(overview))
    get(PREFIX + "/signin", signin_form)
    post(PREFIX + "/signin", signin)
    post(PREFIX + "/signout", guarded(signout))
    get(PREFIX + "/lang/{lang}", choose_language)
    get(PREFIX + "/static/{name}", static)
    get(PREFIX + "/connections/{outlet}/{connector}", guarded(connection))
    post(PREFIX + "/connections/{outlet}/{connector}/connect", guarded(connect_connection))
    post(PREFIX + "/connections/{outlet}/{connector}/backfill", guarded(backfill))
    post(PREFIX + "/connections/{outlet}/{connector}/cursor", guarded(move_cursor))
    post(PREFIX + "/connections/{outlet}/{connector}/pause", guarded(pause_connection))
    post(PREFIX + "/connections/{outlet}/{connector}/resume", guarded(pause_connection))
    get(PREFIX + "/sinks/{sink}", guarded(sink))
    post(PREFIX + "/sinks/{sink}/resume", guarded(resume_sink))
    post(PREFIX + "/sinks/{sink}/connect", guarded(connect_sink))
    get(PREFIX + "/deliveries/{id:\\d+}", guarded(delivery))
    get(PREFIX + "/dead-letters", guarded(dead_letters))
    get(PREFIX + "/dead-letters/{id:\\d+}", guarded(dead_letter))
    post(PREFIX + "/dead-letters/dry-run", guarded(dry_run))
    post(PREFIX + "/dead-letters/replay", guarded(replay))
    post(PREFIX + "/dead-letters/discard", guarded(discard))
    get(PREFIX + "/reconciliations", guarded(reconciliations))
    get(PREFIX + "/records", guarded(records))
    get(PREFIX + "/records/{id:\\d+}", guarded(record))
    get(PREFIX + "/import", guarded(import_form))
    post(PREFIX + "/import", guarded(import_csv))
    get(PREFIX + "/config", guarded(config))


# -- sessions ----------------------------------------------------------------------------------


def guarded(handler: Guarded) -> Handler:
    """`handler` for signed-in browsers only; a POST also needs its session's CSRF token."""

    async def check(request: web.Request) -> web.StreamResponse:
        session = request.app[CONSOLE_KEY].sessions.find(request)
        if session is None:
            if request.method != "GET":
                return web.Response(status=401, text="sign in first")
            raise web.HTTPSeeOther(f"{PREFIX}/signin?{urlencode({'next': request.path_qs})}")
        if request.method == "POST":
            given = request.headers.get(CSRF_HEADER)
            if given is None and request.content_type == "application/x-www-form-urlencoded":
                given = str((await _form(request)).get(CSRF_FIELD, "")) or None
            if not csrf_ok(session, given):
                log.warning("console.csrf_refused", path=request.path)
                return web.Response(status=403, text="the form's CSRF token is missing or wrong")
        response = await handler(request, session)
        response.headers.update(HEADERS)
        return response

    return check


async def _form(request: web.Request) -> MultiDictProxy[str | bytes | bytearray | FileField]:
    """The request's form fields; 400 for a body that is not text (bytes no UTF-8 reads)."""
    try:
        return await request.post()
    except (UnicodeDecodeError, ValueError):
        raise web.HTTPBadRequest(text="the form is not valid UTF-8 text") from None


def _safe_next(value: str | None) -> str:
    """Where to go after signing in: a path of this console, never another site. Browsers
    drop tabs and newlines from a URL (`/<TAB>/evil.example` is `//evil.example` to them), so
    a path with any whitespace or control character goes home instead."""
    if (
        value
        and value.startswith("/")
        and not value.startswith("//")
        and "\\" not in value
        and value.isprintable()
        and not any(c.isspace() for c in value)
    ):
        return value
    return "/"


async def signin_form(request: web.Request) -> web.StreamResponse:
    """The sign-in page."""
    return _render(
        request,
        "signin.html",
        None,
        next=_safe_next(request.query.get("next")),
        signed_out=request.query.get("out") == "1",
    )


async def signin(request: web.Request) -> web.StreamResponse:
    """Check the admin token; on success a session cookie and on to the page asked for."""
    form = await _form(request)
    given, target = str(form.get("token", "")), _safe_next(str(form.get("next", "")))
    session = request.app[CONSOLE_KEY].sessions.sign_in(given)
    if session is None:
        log.warning("console.signin_refused")
        return _render(request, "signin.html", None, next=target, error=True, status=401)
    log.info("console.signed_in")
    response = web.HTTPSeeOther(target)
    set_cookie(response, session, SESSION_TTL)
    raise response


async def signout(request: web.Request, session: Session) -> web.StreamResponse:
    """Forget the session and the cookie."""
    request.app[CONSOLE_KEY].sessions.sign_out(session)
    log.info("console.signed_out")
    response = web.HTTPSeeOther(f"{PREFIX}/signin?out=1")
    clear_cookie(response)
    raise response


async def choose_language(request: web.Request) -> web.StreamResponse:
    """Switch the console's language (a cookie), back to the page it was chosen on."""
    lang = request.match_info["lang"]
    response = web.HTTPSeeOther(_safe_next(request.query.get("next")))
    if lang in LANGUAGES:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, path="/", samesite="Strict")
    raise response


async def static(request: web.Request) -> web.StreamResponse:
    """The console's own CSS and JS (vendored: the daemon may run without internet)."""
    name = request.match_info["name"]
    resource = STATIC / name
    suffix = "." + name.rpartition(".")[2]
    if "/" in name or suffix not in STATIC_TYPES or not resource.is_file():
        raise web.HTTPNotFound()
    return web.Response(
        body=resource.read_bytes(),
        content_type=STATIC_TYPES[suffix],
        headers={"Cache-Control": "max-age=3600"},
    )


# -- rendering ---------------------------------------------------------------------------------


def _render(
    request: web.Request,
    template: str,
    session: Session | None,
    *,
    status: int = 200,
    **context: Any,
) -> web.Response:
    console = request.app[CONSOLE_KEY]
    lang = language_of(request.cookies.get(LANG_COOKIE))
    zones = views.zones(console.host.loaded)

    def local(value: str | datetime | None, outlet: str | None = None) -> str:
        """A time in the outlet's zone (WIB, WITA, WIT), or the first outlet's."""
        try:
            moment = views.parse_time(value)
        except ValueError:  # text that is no time (a vendor's own cursor): shown as it is
            return str(value)
        if moment is None:
            return "-"
        zone = zones.get(outlet or "") or next(iter(zones.values()), None)
        shown = moment.astimezone(zone) if zone else moment
        return shown.strftime("%Y-%m-%d %H:%M:%S %Z")

    response = aiohttp_jinja2.render_template(
        template,
        request,
        {
            "t": translator(lang),
            "lang": lang,
            "csrf": session.csrf if session else "",
            "signed_in": session is not None,
            "path": request.path_qs,
            "quote": quote,
            "local": local,
            "version": __version__,
            "notice": console.sessions.told(session) if session else None,
            **context,
        },
        status=status,
    )
    response.headers.update(HEADERS)
    return response


def money(value: Decimal | str | int | None) -> str:
    """Rupiah as an Indonesian reads it: Rp 1.234.567, -Rp 2.300 (cents kept when there are)."""
    if value is None:
        return "-"
    amount = Decimal(str(value))
    size = abs(amount)
    text = f"{size:,.2f}" if size != size.to_integral_value() else f"{size:,.0f}"
    shown = "Rp " + text.replace(",", "_").replace(".", ",").replace("_", ".")
    return "-" + shown if amount < 0 else shown


def _back(request: web.Request, path: str, notice: str) -> web.HTTPSeeOther:
    """Back to `path`, which shows `notice` once. Kept in the session, not the URL: a link
    someone sends cannot make this console say what they wrote."""
    sessions = request.app[CONSOLE_KEY].sessions
    session = sessions.find(request)
    if session is not None:
        sessions.tell(session, notice)
    return web.HTTPSeeOther(_safe_next(path))


# -- pages -------------------------------------------------------------------------------------


async def overview(request: web.Request, session: Session) -> web.StreamResponse:
    """The grid of outlets and connectors, the sinks, today's totals and the alerts."""
    host = request.app[CONSOLE_KEY].host
    data = await views.overview(host, loop_status(host.loops))
    return _render(request, "overview.html", session, refresh=True, **data)


async def connection(request: web.Request, session: Session) -> web.StreamResponse:
    """One connection."""
    host = request.app[CONSOLE_KEY].host
    found = views.connection_of(
        host.loaded, request.match_info["outlet"], request.match_info["connector"]
    )
    if found is None:
        return _render(request, "missing.html", session, status=404)
    data = await views.connection_page(host, found)
    # While a backfill runs the page follows it by itself.
    active = any(task.active for task in data["backfills"])
    return _render(request, "connection.html", session, refresh=active, **data)


async def _connect(request: web.Request, outlet: str, name: str, back: str) -> web.StreamResponse:
    host = request.app[CONSOLE_KEY].host
    try:
        link = await start_connect(host.credentials, host.loaded, outlet, name)
    except ConfigError as err:
        raise _back(request, back, str(err)) from None
    log.info("console.connect_started", outlet=outlet, connector=name)
    raise web.HTTPSeeOther(link.authorization_url)


async def connect_connection(request: web.Request, _session: Session) -> web.StreamResponse:
    """Start the OAuth connect flow of a connection: on to the vendor's consent page."""
    outlet, name = request.match_info["outlet"], request.match_info["connector"]
    return await _connect(request, outlet, name, f"{PREFIX}/connections/{outlet}/{name}")


async def backfill(request: web.Request, _session: Session) -> web.StreamResponse:
    """Queue a backfill of a window (the outlet's local days, or ISO datetimes)."""
    host = request.app[CONSOLE_KEY].host
    outlet, name = request.match_info["outlet"], request.match_info["connector"]
    form = await _form(request)
    since, until = str(form.get("since", "")).strip(), str(form.get("until", "")).strip()
    back = f"{PREFIX}/connections/{outlet}/{name}"
    try:
        task = await host.backfills.request_text(outlet, name, since, until or None, "console")
    except (UnknownConnection, NotPolled, ValueError) as err:
        raise _back(request, back, str(err)) from None
    raise _back(request, back, f"backfill #{task.id} queued")


async def move_cursor(request: web.Request, session: Session) -> web.StreamResponse:
    """Move (or reset) a poll cursor: first a page to confirm it on, then the move itself."""
    host = request.app[CONSOLE_KEY].host
    outlet, name = request.match_info["outlet"], request.match_info["connector"]
    form = await _form(request)
    value, reset = str(form.get("value", "")).strip(), form.get("reset") == "1"
    reason = str(form.get("reason", "")).strip() or None
    back = f"{PREFIX}/connections/{outlet}/{name}"
    if form.get("confirm") != "1":
        current = await host.store.get_cursor(outlet, name)
        return _render(
            request,
            "cursor_confirm.html",
            session,
            outlet=outlet,
            connector=name,
            current=current,
            value=value,
            reset=reset,
            reason=reason or "",
        )
    try:
        if reset:
            change = await host.cursors.reset(outlet, name, "console", reason)
        else:
            change = await host.cursors.set(outlet, name, value, "console", reason)
    except (UnknownConnection, NotPolled, ValueError) as err:
        raise _back(request, back, str(err)) from None
    raise _back(request, back, f"cursor moved: {change.before or '-'} -> {change.after or '-'}")


async def pause_connection(request: web.Request, _session: Session) -> web.StreamResponse:
    """Pause or resume a connection (which, the last part of the path says)."""
    host = request.app[CONSOLE_KEY].host
    outlet, name = request.match_info["outlet"], request.match_info["connector"]
    form = await _form(request)
    reason = str(form.get("reason", "")).strip()[:500] or None
    back = f"{PREFIX}/connections/{outlet}/{name}"
    pausing = request.path.endswith("/pause")
    change = host.controls.pause if pausing else host.controls.resume
    try:
        await change(outlet, name, "console", reason)
    except (UnknownConnection, NotPolled) as err:
        raise _back(request, back, str(err)) from None
    raise _back(request, back, f"{outlet}/{name} {'paused' if pausing else 'resumed'}")


async def sink(request: web.Request, session: Session) -> web.StreamResponse:
    """One sink."""
    data = await views.sink_page(request.app[CONSOLE_KEY].host, request.match_info["sink"])
    if data is None:
        return _render(request, "missing.html", session, status=404)
    return _render(request, "sink.html", session, **data)


async def delivery(request: web.Request, session: Session) -> web.StreamResponse:
    """One outbox row with every attempt kept of it and the receiver's answers."""
    host = request.app[CONSOLE_KEY].host
    shown = await DeliveryAttempts(host.store).show(int(request.match_info["id"]))
    if shown is None:
        return _render(request, "missing.html", session, status=404)
    return _render(request, "delivery.html", session, row=shown)


async def resume_sink(request: web.Request, _session: Session) -> web.StreamResponse:
    """Resume a paused sink now, rather than at the end of its pause."""
    name = request.match_info["sink"]
    request.app[CONSOLE_KEY].host.dispatcher.reconnected(name)
    log.info("console.sink_resumed", sink=name)
    raise _back(request, f"{PREFIX}/sinks/{name}", "resumed")


async def connect_sink(request: web.Request, _session: Session) -> web.StreamResponse:
    """Start the OAuth connect flow of a sink."""
    name = request.match_info["sink"]
    return await _connect(request, SINK_OUTLET, name, f"{PREFIX}/sinks/{name}")


def _filters(request: web.Request) -> DeadLetterFilter:
    given = {k: v for k, v in request.query.items() if k in DeadLetterFilter.model_fields and v}
    if given.get("status") == "all":
        given["status"] = None  # type: ignore[assignment]
    try:
        return DeadLetterFilter.model_validate({"status": "open", **given})
    except ValidationError:
        return DeadLetterFilter()


async def dead_letters(request: web.Request, session: Session) -> web.StreamResponse:
    """Dead letters by error class with counts, filtered, each to open, dry-run or replay."""
    host = request.app[CONSOLE_KEY].host
    filters = _filters(request)
    error_type = request.query.get("error_type") or None
    target = request.query.get("target") or None
    data = await views.dead_letters_page(host, filters, error_type=error_type, target=target)
    return _render(
        request,
        "dead_letters.html",
        session,
        error_type=error_type,
        target=target,
        outlets=[o.id for o in host.loaded.config.outlets],
        **data,
    )


async def dead_letter(request: web.Request, session: Session) -> web.StreamResponse:
    """One dead letter with its payload and attempts."""
    host = request.app[CONSOLE_KEY].host
    shown = await views.dead_letter_service(host).show(int(request.match_info["id"]))
    if shown is None:
        return _render(request, "missing.html", session, status=404)
    return _render(request, "dead_letter.html", session, entry=shown)


async def _ids(request: web.Request) -> list[int]:
    form = await _form(request)
    return [int(str(v)) for v in form.getall("id", []) if str(v).isdigit()]


async def dry_run(request: web.Request, session: Session) -> web.StreamResponse:
    """What replaying the chosen entries would do now, by group, nothing changed yet; then
    replay those that would go."""
    service = views.dead_letter_service(request.app[CONSOLE_KEY].host)
    groups = await service.plan(await service.entries(await _ids(request)))
    going = [p.id for g in groups for p in g.plans if p.verdict in REPLAYABLE]
    return _render(request, "dry_run.html", session, groups=groups, going=going)


async def replay(request: web.Request, _session: Session) -> web.StreamResponse:
    """Replay the chosen entries group by group; back to the list with what happened."""
    service = views.dead_letter_service(request.app[CONSOLE_KEY].host)
    outcomes, _ = await service.replay_grouped(await service.entries(await _ids(request)))
    log.info("console.replayed", results=[(o.id, o.result) for o in outcomes])
    summary = ", ".join(f"#{o.id} {o.result}" for o in outcomes) or "nothing to replay"
    raise _back(request, f"{PREFIX}/dead-letters", summary)


async def discard(request: web.Request, _session: Session) -> web.StreamResponse:
    """Discard the chosen entries (kept for audit, never replayed)."""
    ids = await _ids(request)
    outcomes = await views.dead_letter_service(request.app[CONSOLE_KEY].host).discard(ids)
    summary = ", ".join(f"#{o.id} {o.result}" for o in outcomes) or "nothing chosen"
    raise _back(request, f"{PREFIX}/dead-letters", summary)


async def reconciliations(request: web.Request, session: Session) -> web.StreamResponse:
    """Each outlet's daily reconciliations: POS sales against what the gateways collected."""
    host = request.app[CONSOLE_KEY].host
    outlet = request.query.get("outlet") or None
    since = host.clock.now().date() - timedelta(days=14)
    try:
        # Through today: the open day shows as open, its figures a running count.
        query = ReconciliationQuery(outlet=outlet, since=since, open=True)
    except ValidationError:
        query = ReconciliationQuery(since=since, open=True)
    found = await views.reconciliations(host, query)
    return _render(
        request,
        "reconciliations.html",
        session,
        found=sorted(found, key=lambda r: (r.result.outlet, r.result.business_date), reverse=True),
        outlet=outlet,
        outlets=[o.id for o in host.loaded.config.outlets],
    )


def _record_query(request: web.Request) -> RecordQuery:
    q = request.query
    day: date | None = None
    try:
        day = date.fromisoformat(q["business_date"]) if q.get("business_date") else None
    except ValueError:
        day = None
    return RecordQuery(
        outlet=q.get("outlet") or None,
        kind=q.get("kind") or None,
        external_id=(q.get("external_id") or "").strip() or None,
        business_date=day,
        limit=100,
    )


async def records(request: web.Request, session: Session) -> web.StreamResponse:
    """Search records by outlet, kind, external id and business date."""
    host = request.app[CONSOLE_KEY].host
    query = _record_query(request)
    found = await host.store.search_records(query)
    return _render(
        request,
        "records.html",
        session,
        query=query,
        found=found,
        outlets=[o.id for o in host.loaded.config.outlets],
        kinds=sorted(RECORD_KINDS),
    )


async def record(request: web.Request, session: Session) -> web.StreamResponse:
    """One record: its revisions, its raw event and where it was delivered."""
    data = await views.record_page(request.app[CONSOLE_KEY].host, int(request.match_info["id"]))
    if data is None:
        return _render(request, "missing.html", session, status=404)
    return _render(request, "record.html", session, **data)


async def import_form(request: web.Request, session: Session) -> web.StreamResponse:
    """The CSV upload form: one outlet's file-drop connector."""
    host = request.app[CONSOLE_KEY].host
    targets = [
        (c.outlet.id, c.name)
        for c in host.loaded.connections
        if c.settings.enabled and "file-drop" in c.settings.mode
    ]
    return _render(request, "import.html", session, targets=targets)


async def import_csv(request: web.Request, _session: Session) -> web.StreamResponse:
    """The upload itself, by the page's script (CSRF in its header): the admin API's CSV
    import, answered in the same JSON."""
    return await upload_csv(request)


@functools.cache
def installed_plugins() -> tuple[str, ...]:
    """`sambung plugins`' lines, read once: plugins load when the process starts."""
    from sambung.cli.loading import plugin_registry
    from sambung.cli.report import plugins_report

    return tuple(plugins_report(plugin_registry()))


async def config(request: web.Request, session: Session) -> web.StreamResponse:
    """What `sambung check` says of the running config, and the plugins with their versions."""
    from sambung.cli.report import check_report

    host = request.app[CONSOLE_KEY].host
    return _render(
        request,
        "config.html",
        session,
        check=check_report(host.loaded),
        plugins=installed_plugins(),
    )
