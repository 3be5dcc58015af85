"""The operator console in process, on the daemon's real admin app: sign-in and its cookie,
CSRF, sign-out, the JSON API still behind its bearer token, and every page showing what the
store holds in the outlet's time zone, with no secret in any page."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request
from hypothesis import example, given
from hypothesis import strategies as st
from sambung.clock import Clock
from sambung.config import load_config
from sambung.console.app import _filters, _record_query, _safe_next, money
from sambung.console.session import COOKIE, Sessions
from sambung.models import LineItem, PaymentMethod, Transaction, TransactionType
from sambung.plugins import load_plugins
from sambung.runtime.admin import admin_app
from sambung.runtime.daemon import Daemon
from sambung.store import DeadLetterIn, IngestRequest, RawEvent
from sambung.testing.manual_clock import ManualClock

TOKEN = "console-test-admin-token-0123456789"
WEBHOOK_SECRET = "console-test-pawoon-secret-abcdef"
SINK_SECRET = "whsec_Y29uc29sZS10ZXN0LXNpbmstc2VjcmV0"
REGISTRY = load_plugins(frozenset({"pawoon"}))
Client = TestClient[Any, Any]


@pytest.fixture
async def console(tmp_path: Path, clock: ManualClock) -> AsyncIterator[tuple[Daemon, Client]]:
    """The admin app of a daemon (not started) with one outlet in Makassar (WITA)."""
    document = {
        "store": {"url": "sqlite:///./sambung.db"},
        "server": {
            "public": {"host": "127.0.0.1", "port": 0},
            "admin": {"host": "127.0.0.1", "port": 0, "token": TOKEN},
        },
        "outlets": [
            {
                "id": "panakkukang",
                "name": "Kopi Panakkukang",
                "timezone": "Asia/Makassar",
                "connectors": {"pawoon": {"mode": "webhook", "webhook_secret": WEBHOOK_SECRET}},
            }
        ],
        "sinks": {
            "backend": {"type": "http", "url": "http://127.0.0.1:9/x", "secret": SINK_SECRET}
        },
    }
    path = tmp_path / "sambung.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    daemon = Daemon(load_config(path, REGISTRY, environ={}), REGISTRY, clock=clock)
    await daemon.store.open()
    client: Client = TestClient(TestServer(admin_app(daemon, TOKEN)))
    await client.start_server()
    try:
        yield daemon, client
    finally:
        await client.close()
        await daemon.store.close()


def sale(clock: Clock, external_id: str, total: str, **fields: Any) -> Transaction:
    """A sale made now, on today's business date in Makassar."""
    now = clock.now()
    local = now.astimezone(ZoneInfo("Asia/Makassar"))
    amount = Decimal(total)
    return Transaction(
        outlet="panakkukang",
        source_system="pawoon",
        external_id=external_id,
        occurred_at=now,
        business_date=local.date(),
        subtotal=amount,
        total=amount,
        items=(LineItem(name="Kopi", quantity=Decimal(1), unit_price=amount, total=amount),),
        **fields,
    )


async def sign_in(client: Client) -> str:
    """Sign in; the CSRF token of the session, read from the overview's sign-out form."""
    answer = await client.post("/console/signin", data={"token": TOKEN, "next": "/"})
    assert answer.status == 200, await answer.text()
    return csrf_of(await answer.text())


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None, page
    return found.group(1)


async def test_pages_need_a_session_and_signing_in_needs_the_token(console: Any) -> None:
    _, client = console
    first = await client.get("/", allow_redirects=False)
    wrong = await client.post("/console/signin", data={"token": TOKEN[:-1] + "x"})

    assert first.status == 303 and first.headers["Location"] == "/console/signin?next=/"
    assert wrong.status == 401 and COOKIE not in wrong.cookies
    assert client.session.cookie_jar.filter_cookies(client.make_url("/")).get(COOKIE) is None

    right = await client.post("/console/signin", data={"token": TOKEN}, allow_redirects=False)
    cookie = right.cookies[COOKIE]
    assert right.status == 303 and right.headers["Location"] == "/"
    assert cookie["httponly"] is True and cookie["samesite"] == "Strict"
    assert int(cookie["max-age"]) == 8 * 3600 and cookie["path"] == "/"
    assert TOKEN not in cookie.value and len(cookie.value) >= 40
    assert (await client.get("/")).status == 200


async def test_a_post_without_the_csrf_token_is_refused(console: Any) -> None:
    daemon, client = console
    result = await daemon.store.ingest(
        IngestRequest(
            dead_letter=DeadLetterIn("ingest", "panakkukang", "pawoon", "InvalidRecord", "bad")
        )
    )
    entry = result.dead_letter_id
    csrf = await sign_in(client)

    forged = await client.post("/console/dead-letters/discard", data={"id": str(entry)})
    wrong = await client.post("/console/dead-letters/discard", data={"id": entry, "csrf": "x"})
    still = await daemon.store.get_dead_letter(entry)
    done = await client.post("/console/dead-letters/discard", data={"id": entry, "csrf": csrf})
    after = await daemon.store.get_dead_letter(entry)

    assert forged.status == 403 and wrong.status == 403
    assert still.status == "open"
    assert done.status == 200 and after.status == "discarded"
    assert f"#{entry} discarded" in await done.text()
    # Said once, from the session: a link cannot put words in the console's mouth.
    assert f"#{entry} discarded" not in await (await client.get("/console/dead-letters")).text()
    forged_notice = await client.get("/console/dead-letters?notice=Call+0812+for+help")
    assert "Call 0812" not in await forged_notice.text()


async def test_signing_out_makes_the_cookie_worthless(console: Any) -> None:
    _, client = console
    csrf = await sign_in(client)
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))[COOKIE].value

    out = await client.post("/console/signout", data={"csrf": csrf}, allow_redirects=False)
    replayed = await client.get("/", cookies={COOKIE: cookie}, allow_redirects=False)

    assert out.status == 303 and out.cookies[COOKIE].value == ""
    assert replayed.status == 303  # the copied cookie signs nobody in


async def test_the_json_api_keeps_its_bearer_token(console: Any) -> None:
    _, client = console
    await sign_in(client)
    with_cookie = await client.get("/api/v1/status")
    with_bearer = await client.get("/api/v1/status", headers={"Authorization": f"Bearer {TOKEN}"})
    assert with_cookie.status == 401 and with_bearer.status == 200


async def test_a_session_expires(clock: ManualClock) -> None:
    sessions = Sessions(TOKEN, clock, ttl=timedelta(minutes=5))
    session = sessions.sign_in(TOKEN)
    assert session is not None and sessions.sign_in("nope") is None

    request = make_mocked_request("GET", "/", headers={"Cookie": f"{COOKIE}={session.id}"})

    assert sessions.find(request) == session
    clock.advance(300)
    assert sessions.find(request) is None


async def test_every_page_shows_the_store_in_the_outlets_zone_without_a_secret(
    console: Any,
) -> None:
    daemon, client = console
    store, clock = daemon.store, daemon.clock
    raw = RawEvent(
        "panakkukang",
        "pawoon",
        "webhook",
        "k1",
        b'{"id": "TRX-1", "note": "<b>hi</b>"}',
        clock.now(),
        "transaction.created",
        "application/json",
    )
    first = await store.ingest(
        IngestRequest(
            raw=raw,
            records=[
                sale(clock, "TRX-1", "25000", payment_method=PaymentMethod.QRIS),
                sale(clock, "TRX-2", "10000", type=TransactionType.REFUND),
            ],
            routes=[["backend"], ["backend"]],
        )
    )
    await store.ingest(
        IngestRequest(
            records=[sale(clock, "TRX-1", "27500", payment_method=PaymentMethod.QRIS)],
            routes=[["backend"]],
        )
    )
    await store.ingest(
        IngestRequest(
            dead_letter=DeadLetterIn(
                "ingest",
                "panakkukang",
                "pawoon",
                "InvalidRecord",
                "total: not a number",
                payload='{"total": "<script>x</script>"}',
            )
        )
    )
    record_id = first.records[0].id
    await sign_in(client)
    pages = {}
    for path in (
        "/",
        "/console/connections/panakkukang/pawoon",
        "/console/sinks/backend",
        "/console/dead-letters",
        "/console/dead-letters?error_type=InvalidRecord&target=pawoon",
        "/console/dead-letters?error_type=DeliveryRejected",
        "/console/dead-letters/1",
        "/console/records?outlet=panakkukang&external_id=TRX-1",
        f"/console/records/{record_id}",
        "/console/import",
        "/console/config",
        "/console/reconciliations",
    ):
        answer = await client.get(path)
        assert answer.status == 200, (path, await answer.text())
        assert answer.headers["Cache-Control"] == "no-store"
        pages[path] = await answer.text()

    overview = pages["/"]
    assert "Rp 27.500" in overview and "Rp 10.000" in overview and "qris" in overview
    assert 'data-connection="panakkukang/pawoon"' in overview
    assert "WITA" in overview  # the outlet's zone, not UTC
    connection = pages["/console/connections/panakkukang/pawoon"]
    assert "/api/v1/integrations/webhooks/pawoon" in connection
    assert "total: not a number" in connection
    letters = pages["/console/dead-letters"]
    assert "InvalidRecord" in letters and '<td class="num">1</td>' in letters
    assert "&lt;script&gt;" in pages["/console/dead-letters/1"]  # escaped, never markup
    assert 'data-id="1"' in pages["/console/dead-letters?error_type=InvalidRecord&target=pawoon"]
    assert 'data-id="1"' not in pages["/console/dead-letters?error_type=DeliveryRejected"]
    record = pages[f"/console/records/{record_id}"]
    assert "Revisi 2" in record and "Revisi 1" in record and "27500" in record
    assert "&lt;b&gt;hi&lt;/b&gt;" in record  # the raw event, escaped
    assert "TRX-1" in pages["/console/records?outlet=panakkukang&external_id=TRX-1"]
    assert "config OK" in pages["/console/config"] and "pawoon" in pages["/console/config"]
    for path, page in pages.items():
        for secret in (TOKEN, WEBHOOK_SECRET, SINK_SECRET):
            assert secret not in page, (path, secret[:4])


async def test_the_language_switch_turns_the_console_english(console: Any) -> None:
    _, client = console
    await sign_in(client)
    indonesian = await (await client.get("/")).text()
    english = await (await client.get("/console/lang/en?next=/")).text()
    assert "Surat mati" in indonesian and "Dead letters" in english


@given(st.text(max_size=40))
@example("/\t/evil.example")
@example("/\n/evil.example")
@example("/ok/path?x=1")
def test_the_page_after_sign_in_is_always_one_of_this_console(value: str) -> None:
    target = _safe_next(value)
    # As a browser reads it: tabs and newlines dropped.
    read = target.replace("\t", "").replace("\n", "").replace("\r", "")
    assert read.startswith("/") and not read.startswith("//") and "\\" not in read
    assert target in (value, "/")


QUERY_KEYS = ("stage", "outlet", "connector", "since", "status", "limit", "kind")
QUERY_KEYS += ("external_id", "business_date", "error_type")


@given(st.dictionaries(st.sampled_from(QUERY_KEYS), st.text(max_size=30), max_size=6))
def test_any_query_a_browser_sends_is_read_as_some_search(query: dict[str, str]) -> None:
    request = make_mocked_request("GET", "/console/records?" + urlencode(query))
    letters = _filters(request)
    records = _record_query(request)
    assert letters.status in ("open", "replayed", "discarded", None)
    assert 1 <= letters.limit <= 100_000 and records.limit == 100


@given(st.text(max_size=60))
@example("\ud800" + TOKEN)
@example(TOKEN)
def test_only_the_admin_token_signs_in(given_token: str) -> None:
    sessions = Sessions(TOKEN, ManualClock())
    session = sessions.sign_in(given_token)
    assert (session is not None) == (given_token == TOKEN)


@pytest.mark.parametrize("body", [b"token=%ED%A0%80", b"token=\xff\xfe", b"next=%00&token="])
async def test_a_sign_in_form_no_text_can_hold_is_refused_not_a_500(
    console: Any, body: bytes
) -> None:
    _, client = console
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    answer = await client.post("/console/signin", data=body, headers=form)
    assert answer.status in (400, 401)


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        ("1234567", "Rp 1.234.567"),
        ("10972571.90", "Rp 10.972.571,90"),
        ("-2323.15", "-Rp 2.323,15"),
        ("0", "Rp 0"),
        (None, "-"),
    ],
)
def test_rupiah_read_the_indonesian_way(amount: str | None, shown: str) -> None:
    assert money(None if amount is None else Decimal(amount)) == shown
