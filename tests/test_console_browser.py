"""The operator console in a real browser (Debian's Chromium through Playwright) against
`sambung run --simulate` as a real process: sign in, watch the grid fill, read a failing
connection's error, import a CSV with a bad row, dry-run and replay dead letters, sign out, and
a forged POST refused. Screenshots go to .artifacts/console/ (not committed); the overview's and
the dead letters' are copied to docs/screenshots/ for the README when SAMBUNG_SCREENSHOTS=docs.

One daemon serves every scenario, in file order: the import feeds the dead letters the replay
scenario replays. Never skipped: without /usr/bin/chromium the module fails (`make test`
installs it first).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
from sambung.testing.daemon import DaemonProcess, free_port
from sambung.testing.receiver import Answer, Receiver, ReceiverThread

from .csvdata import pawoon_export

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / ".artifacts" / "console"
DOCS = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium calls home, which this closed network refuses.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "console-browser-admin-token-42"
LEDGER_SECRET = "whsec_Y29uc29sZS1icm93c2VyLWxlZGdlci1zZWNyZXQtMzJi"
DESKTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}


class Demo:
    """The daemon under test, its admin URL and the ledger receiver it delivers to."""

    def __init__(self, daemon: DaemonProcess, admin: str, ledger: Receiver) -> None:
        self.daemon = daemon
        self.admin = admin
        self.ledger = ledger


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """`sambung run --simulate`: kemang's Pawoon webhooks simulated; Panakkukang's Qasir polls
    a vendor that is not there (failing); Panakkukang's Pawoon file drop feeds a `ledger` sink
    whose receiver refuses everything (400) until a test lets it accept."""
    workdir = tmp_path_factory.mktemp("console")
    admin_port = free_port()
    ledger = Receiver(LEDGER_SECRET)
    ledger.default = Answer(400, body="ledger: account 4-1000 is closed")
    with ReceiverThread(ledger):
        config = {
            "server": {"admin": {"host": "127.0.0.1", "port": admin_port, "token": TOKEN}},
            "outlets": [
                {
                    "id": "kemang",
                    "name": "Kopi Senja Kemang",
                    "timezone": "Asia/Jakarta",
                    "connectors": {
                        "pawoon": {"mode": "webhook", "webhook_secret": "console-pawoon-secret"},
                        # On this machine: the simulator serves a fake Qasir there.
                        "qasir": {
                            "mode": "poll",
                            "api_key": "console-qasir-key",
                            "base_url": f"http://127.0.0.1:{free_port()}/v1",
                            "interval": "15s",
                        },
                    },
                },
                {
                    "id": "panakkukang",
                    "name": "Kopi Senja Panakkukang",
                    "timezone": "Asia/Makassar",
                    "connectors": {
                        "pawoon": {
                            "mode": "file-drop",
                            "on_row_error": "skip",
                            # The simulator's own drops would add dead letters as the tests run.
                            "poll_seconds": 3600,
                        },
                        # 127.0.0.2: not this machine's simulator, and nobody listens there.
                        "qasir": {
                            "mode": "poll",
                            "api_key": "console-qasir-key",
                            "base_url": f"http://127.0.0.2:{free_port()}/v1",
                            "interval": "15s",
                        },
                    },
                },
            ],
            "sinks": {
                "ledger": {
                    "type": "http",
                    "url": ledger.url,
                    "secret": LEDGER_SECRET,
                    "outlets": ["panakkukang"],
                }
            },
        }
        daemon = DaemonProcess(workdir, config, args=("--simulate",)).start()
        try:
            yield Demo(daemon, f"http://127.0.0.1:{admin_port}", ledger)
        finally:
            daemon.terminate()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless; the test fails (never skips) without it."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (make test does)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile (no cookie) at 1366x768."""
    opened = browser.new_context(viewport=DESKTOP)
    opened.set_default_timeout(20_000)
    yield opened
    opened.close()


def shot(page: Page, name: str, *, docs: bool = False) -> None:
    """Keep a screenshot as a test artifact (and for the README, when asked to)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if docs and os.environ.get("SAMBUNG_SCREENSHOTS") == "docs":
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, DOCS / f"console-{name}.png")


def sign_in(page: Page, demo: Demo, path: str = "/") -> None:
    """Open `path`, be sent to sign in, sign in with the admin token, land on `path`."""
    page.goto(demo.admin + path)
    expect(page).to_have_url(re.compile(r"/console/signin\?next="))
    page.fill("#token", TOKEN)
    page.click("#signin")
    expect(page).to_have_url(demo.admin + path)


def until(page: Page, check: Callable[[], Any], seconds: float = 45.0) -> None:
    """Reload `page` until `check()` holds (the daemon works at its own pace)."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, page.content()[-3000:]
        page.wait_for_timeout(500)
        page.reload()


def test_sign_in_and_see_the_grid_fill(context: BrowserContext, demo: Demo) -> None:
    page = context.new_page()
    sign_in(page, demo)
    kemang = page.locator('tr[data-connection="kemang/pawoon"] .records-today')
    until(page, lambda: int(kemang.inner_text()) > 0)
    expect(page.locator('tr[data-connection="kemang/pawoon"] .pill')).to_have_text("ok")
    expect(page.locator('.total[data-outlet="kemang"]')).to_contain_text("Rp")
    shot(page, "overview-first")


def test_a_failing_connection_shows_its_error(context: BrowserContext, demo: Demo) -> None:
    page = context.new_page()
    sign_in(page, demo, "/console/connections/panakkukang/qasir")
    until(page, lambda: page.inner_text("#state") == "failing")
    error = page.inner_text("#last-error")
    assert "127.0.0.2" in error or "onnect" in error, error
    assert "console-qasir-key" not in page.content()
    shot(page, "connection-failing")


def test_a_csv_with_a_bad_row_shows_the_row_error(context: BrowserContext, demo: Demo) -> None:
    page = context.new_page()
    sign_in(page, demo, "/console/import")
    page.select_option("#target", "panakkukang|pawoon")
    export = pawoon_export(3, start=900, bad={901})
    page.set_input_files(
        "#file", files=[{"name": "pawoon.csv", "mimeType": "text/csv", "buffer": export}]
    )
    page.click("#send")
    expect(page.locator("#result")).to_contain_text("imported 2 rows; 1 rejected")
    rows = page.locator("#row-errors tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("3")  # the file's third line: the second data row
    with page.expect_download() as download:
        page.click("#errors-file")
    errors = Path(download.value.path()).read_text(encoding="utf-8")
    assert errors.startswith("row,error,data\n") and "PWN-000901" in errors
    shot(page, "import")


def test_dry_run_then_replay_dead_letters(context: BrowserContext, demo: Demo) -> None:
    page = context.new_page()
    sign_in(page, demo, "/console/dead-letters?stage=delivery")
    letters = page.locator("#letters tbody tr")
    until(page, lambda: letters.count() >= 2)  # the ledger refused both imported sales
    expect(page.locator("#groups")).to_contain_text("DeliveryRejected")
    expect(letters.first).to_contain_text("account 4-1000 is closed")
    shot(page, "dead-letters", docs=True)
    page.set_viewport_size(PHONE)
    shot(page, "dead-letters-phone")
    page.set_viewport_size(DESKTOP)
    ids = [letters.nth(i).get_attribute("data-id") for i in range(letters.count())]

    # One entry, with each attempt and the receiver's answer.
    page.goto(f"{demo.admin}/console/dead-letters/{ids[0]}")
    expect(page.locator("#attempts")).to_contain_text("account 4-1000 is closed")
    expect(page.locator("#attempts")).to_contain_text("400")
    page.go_back()

    demo.ledger.default = Answer(204)  # the ledger's account was fixed
    page.check('input[data-all="id"]')
    page.click("#dry-run")
    plan = page.locator("table.plan tbody tr")
    expect(plan).to_have_count(len(ids))
    expect(plan.first).to_contain_text("would_requeue")
    assert page.locator("#letters").count() == 0  # a page of its own, nothing replayed yet
    shot(page, "dry-run")
    page.click("#replay")
    expect(page.locator(".notice")).to_contain_text("requeued")
    page.goto(demo.admin + "/console/dead-letters?stage=delivery")
    for entry in ids:
        expect(page.locator(f'#letters tr[data-id="{entry}"]')).to_have_count(0)
    page.goto(demo.admin + "/console/sinks/ledger")
    until(page, lambda: "delivered" in page.inner_text("#recent"))
    shot(page, "sink")


def test_a_backfill_runs_to_its_end_and_the_cursor_moves_after_a_confirmation(
    context: BrowserContext, demo: Demo
) -> None:
    page = context.new_page()
    path = "/console/connections/kemang/qasir"
    sign_in(page, demo, path)
    today = datetime.now(ZoneInfo("Asia/Jakarta")).date()
    page.fill("#backfill-since", (today - timedelta(days=2)).isoformat())
    page.click("#backfill")
    expect(page.locator(".notice")).to_contain_text("queued")
    task = page.locator("#backfill-tasks tbody tr").first
    until(page, lambda: task.get_attribute("data-state") == "done", seconds=60)
    expect(task).to_contain_text("100%")
    shot(page, "backfill")

    page.goto(demo.admin + path)
    before = page.inner_text("#cursor")
    page.fill("#cursor-value", (today - timedelta(days=1)).isoformat())
    page.click("#move-cursor")
    expect(page.locator("#cursor-after")).to_have_text((today - timedelta(days=1)).isoformat())
    assert page.inner_text("#cursor-before") == before  # nothing moved before the confirmation
    page.click("#confirm-cursor")
    expect(page.locator(".notice")).to_contain_text("cursor moved")
    expect(page.locator("#cursor-history tbody tr").first).to_contain_text("operator:console")
    shot(page, "cursor")


def test_pause_then_resume_from_the_connection_page_with_its_runs(
    context: BrowserContext, demo: Demo
) -> None:
    page = context.new_page()
    path = "/console/connections/kemang/qasir"
    sign_in(page, demo, path)
    runs = page.locator("#run-rows tbody tr")
    until(page, lambda: runs.count() > 0)
    expect(runs.first).to_contain_text("WIB")  # started, in the outlet's zone
    page.fill("#pause-reason", "till replaced")
    page.click("#pause")
    expect(page.locator(".notice")).to_contain_text("paused")
    expect(page.locator("#state")).to_have_text("paused")
    expect(page.locator("#paused-by")).to_contain_text("operator:console")
    expect(page.locator("#paused-by")).to_contain_text("till replaced")
    page.goto(demo.admin + "/")
    expect(page.locator('tr[data-connection="kemang/qasir"] .pill')).to_have_text("paused")
    shot(page, "overview-paused")

    page.goto(demo.admin + path)
    page.click("#resume")
    expect(page.locator(".notice")).to_contain_text("resumed")
    expect(page.locator("#state")).not_to_have_text("paused")
    expect(page.locator("#pause")).to_be_visible()
    expect(page.locator("#paused-by")).to_have_count(0)
    expect(page.locator("#pause-history tbody tr")).to_have_count(2)
    shot(page, "connection-runs")


def test_signed_out_the_console_refuses(context: BrowserContext, demo: Demo) -> None:
    page = context.new_page()
    sign_in(page, demo)
    page.click("#signout")
    expect(page).to_have_url(re.compile(r"/console/signin"))
    page.goto(demo.admin + "/console/dead-letters")
    expect(page).to_have_url(re.compile(r"/console/signin\?next="))
    assert page.request.get(demo.admin + "/console/config", max_redirects=0).status == 303


def test_a_forged_post_without_the_csrf_token_is_refused(
    context: BrowserContext, demo: Demo
) -> None:
    page = context.new_page()
    sign_in(page, demo)
    # The browser's own cookie, but no CSRF token: what a forged cross-site form would send.
    forged = page.request.post(
        demo.admin + "/console/dead-letters/discard", form={"id": "1"}, max_redirects=0
    )
    assert forged.status == 403
    bearer_only = page.request.get(demo.admin + "/api/v1/status")
    assert bearer_only.status == 401  # the JSON API keeps its bearer token


def test_the_overview_after_it_all(context: BrowserContext, demo: Demo) -> None:
    page = context.new_page()
    sign_in(page, demo)
    expect(page.locator('tr[data-connection="panakkukang/qasir"] .pill')).to_have_text("failing")
    expect(page.locator("#attention")).to_contain_text("panakkukang / qasir")
    shot(page, "overview", docs=True)
    # The page refreshes itself in place: new sales show without a reload (which would drop
    # the mark set here).
    today = page.locator('tr[data-connection="kemang/pawoon"] .records-today')
    before = today.inner_text()
    page.evaluate("window.sambungMark = 1")
    expect(today).not_to_have_text(before, timeout=30_000)
    assert page.evaluate("window.sambungMark") == 1
    page.set_viewport_size(PHONE)
    shot(page, "overview-phone")


def test_a_record_with_its_revisions_raw_event_and_deliveries(
    context: BrowserContext, demo: Demo
) -> None:
    page = context.new_page()
    sign_in(page, demo, "/console/records?outlet=panakkukang")
    page.locator("table.records tbody tr a").first.click()
    expect(page.locator("main")).to_contain_text("PWN-000")
    expect(page.locator("main")).to_contain_text("ledger")  # where it was delivered
    shot(page, "record")
    page.goto(demo.admin + "/console/config")
    expect(page.locator("#check")).to_contain_text("config OK")
    expect(page.locator("#plugins")).to_contain_text("pawoon")
    shot(page, "config")
