"""Daily reconciliation with the daemon as a real process: a POS sale without its payment makes a
closed day differ; the payment's callback arriving after the day closed makes a new revision
that matches, delivered to the sink that asks for reconciliations; `sambung reconcile` and the
admin API show it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sambung.clock import SystemClock
from sambung.testing.accounting import days_ago
from sambung.testing.daemon import DaemonProcess, HttpClient, free_port
from sambung_xendit import fake

from .payloads import PAWOON_SECRET, WEBHOOKS, pawoon_sale, signed

TOKEN = "xendit-e2e-callback-token"
ADMIN_TOKEN = "reconcile-e2e-admin-token"
StartDaemon = Callable[..., DaemonProcess]


def paid_invoice(reference: str, amount: int, paid_at: Any) -> bytes:
    """Xendit's callback for a QRIS payment of `amount` for order `reference`."""
    row = fake.invoice(1, paid_at - timedelta(minutes=1), outlet="kemang")
    row = {**row, "id": f"inv-{reference}", "external_id": reference, "amount": amount}
    return json.dumps(fake.paid(row, paid_at, channel=0), default=str).encode()


async def test_a_late_callback_flips_a_closed_day_to_matched(sambung_daemon: StartDaemon) -> None:
    admin_port = free_port()
    config = {
        "server": {"admin": {"host": "127.0.0.1", "port": admin_port, "token": ADMIN_TOKEN}},
        "outlets": [
            {
                "id": "kemang",
                "name": "Kopi Senja Kemang",
                "timezone": "Asia/Jakarta",
                "connectors": {
                    "pawoon": {"mode": "webhook", "webhook_secret": PAWOON_SECRET},
                    "xendit": {"mode": "webhook", "callback_token": TOKEN},
                },
            }
        ],
        "sinks": {"days": {"type": "jsonl", "path": "./days.jsonl", "kinds": ["reconciliation"]}},
        "summaries": {"after": "00:00", "every_seconds": 1},
        "reconciliation": {"every_seconds": 1},
    }
    daemon = await asyncio.to_thread(sambung_daemon, config)
    # Yesterday in Jakarta, whatever today is: closed, so it is reconciled.
    sold_at = days_ago(1, 20, 15)
    day = sold_at.date().isoformat()

    async def post(connector: str, body: bytes, headers: dict[str, str]) -> None:
        path = f"{WEBHOOKS}/{connector}/kemang"
        status, answer = await asyncio.to_thread(daemon.post, path, body, headers)
        assert status == 200, answer

    async def reconciled(revision: int) -> dict[str, Any]:
        for _ in range(300):
            result = await asyncio.to_thread(daemon.cli, "reconcile", "--date", day, "--json")
            lines = result.stdout.splitlines()
            if lines and json.loads(lines[0])["revision"] >= revision:
                return dict(json.loads(lines[0]), exit=result.returncode)
            await asyncio.sleep(0.2)
        raise AssertionError(f"no revision {revision}: {result.stdout}{result.stderr}")

    local = f"{sold_at:%Y-%m-%d %H:%M:%S}"
    for sale in ("TRX-1", "TRX-2"):
        body = pawoon_sale(sale, total=27500, timestamp=local, payment_method="QRIS")
        await post("pawoon", body, signed(body, PAWOON_SECRET, "X-Webhook-Signature"))
    await post(
        "xendit",
        paid_invoice("TRX-1", 27500, sold_at + timedelta(minutes=1)),
        {"x-callback-token": TOKEN},
    )
    first = await reconciled(1)
    assert (first["status"], first["difference"], first["exit"]) == ("differs", "-27500", 1)
    assert [s["sale"] for s in first["unmatched_sales"]] == ["pawoon:TRX-2"]

    # TRX-2's callback comes the next morning; it was paid the evening before (paid_at).
    await post(
        "xendit",
        paid_invoice("TRX-2", 27500, sold_at + timedelta(minutes=3)),
        {"x-callback-token": TOKEN},
    )
    second = await reconciled(2)
    assert (second["status"], second["difference"], second["exit"]) == ("matched", "0", 0)
    assert (second["gross"], second["fees"], second["net"]) == (
        "55000",
        "384",
        "54616",
    )  # 0.7 % of 27,500 is 192.5: 192

    text = await asyncio.to_thread(daemon.cli, "reconcile", "--date", day)
    assert f"kemang {day} (Asia/Jakarta)  MATCHED  (r2;" in text.stdout
    _, listed = await asyncio.to_thread(
        HttpClient(f"http://127.0.0.1:{admin_port}").get,
        f"/api/v1/reconciliations?outlet=kemang&date={day}",
        {"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert [(r["status"], r["revision"]) for r in listed["reconciliations"]] == [("matched", 2)]

    # Each revision went to the sink that asks for reconciliations, and nothing else did.
    for _ in range(300):
        delivered = (daemon.workdir / "days.jsonl").read_text(encoding="utf-8").splitlines()
        if len(delivered) >= 2:
            break
        await asyncio.sleep(0.2)
    statuses = [json.loads(line) for line in delivered]
    assert {s.get("kind") or s.get("data", {}).get("kind") for s in statuses} == {"reconciliation"}
    assert len(delivered) == 2


async def test_the_simulator_pays_one_outlet_exactly_and_the_other_not_quite(
    sambung_daemon: StartDaemon,
) -> None:
    def outlet(id: str, timezone: str) -> dict[str, Any]:
        return {
            "id": id,
            "name": id.title(),
            "timezone": timezone,
            "connectors": {
                "pawoon": {"mode": "webhook", "webhook_secret": PAWOON_SECRET},
                "xendit": {"mode": "webhook", "callback_token": TOKEN},
            },
        }

    config = {
        "outlets": [outlet("kemang", "Asia/Jakarta"), outlet("panakkukang", "Asia/Makassar")],
        "summaries": {"after": "00:00", "every_seconds": 1},
        "reconciliation": {"every_seconds": 1},
    }
    daemon = await asyncio.to_thread(sambung_daemon, config, args=("--simulate",))

    async def today(outlet: str) -> dict[str, Any] | None:
        shown = await asyncio.to_thread(
            daemon.cli, "reconcile", "--outlet", outlet, "--fresh", "--json"
        )
        lines = shown.stdout.splitlines()
        return json.loads(lines[-1]) if lines else None

    # kemang, first in the file, gets the mismatches: a sale left unpaid, one paid short.
    for _ in range(600):
        kemang = await today("kemang")
        if (
            kemang
            and kemang["unmatched_sales"]
            and any(m["difference"] == "-2000" for m in kemang["matched"])
        ):
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError(f"no unpaid and short sales at kemang: {kemang}")
    assert all(m["by"] == "reference" for m in kemang["matched"])
    assert '"event": "simulator.sale_left_unpaid"' in daemon.logs()

    # panakkukang is paid exactly: every payment names a sale, for its whole amount.
    panakkukang = await today("panakkukang")
    assert panakkukang is not None and panakkukang["matched"]
    assert panakkukang["unmatched_payments"] == []
    assert {m["difference"] for m in panakkukang["matched"]} == {"0"}

    # Yesterday, rung up and paid at start, is closed and stays put: it matches at
    # panakkukang (its own WITA yesterday) and differs at kemang.
    async def yesterday(outlet: str, timezone: str) -> dict[str, Any]:
        day = (SystemClock().now().astimezone(ZoneInfo(timezone)) - timedelta(days=1)).date()
        for _ in range(300):
            shown = await asyncio.to_thread(
                daemon.cli, "reconcile", "--outlet", outlet, "--date", day.isoformat(), "--json"
            )
            if shown.stdout.strip():
                return dict(json.loads(shown.stdout), exit=shown.returncode)
            await asyncio.sleep(0.2)
        raise AssertionError(f"no reconciliation of {outlet} {day}: {shown.stderr}")

    closed = await yesterday("panakkukang", "Asia/Makassar")
    assert (closed["status"], closed["exit"], len(closed["matched"])) == ("matched", 0, 10)
    closed = await yesterday("kemang", "Asia/Jakarta")
    assert (closed["status"], closed["exit"], len(closed["unmatched_sales"])) == ("differs", 1, 1)
    assert [m["difference"] for m in closed["matched"] if m["difference"] != "0"] == ["-2000"]
