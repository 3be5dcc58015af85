"""The daemon's public app in process, on SQLite and PostgreSQL, for the hostile-input fuzzing."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, settings
from pydantic import BaseModel
from sambung.clock import Clock
from sambung.config import WEBHOOK_PATH, LoadedConfig, load_config
from sambung.connectors import Connector, Mode, WebhookConnector, WebhookRequest
from sambung.delivery.dlq import DeadLetters
from sambung.models import RECORD_KINDS, Record
from sambung.parse import bounded_amount
from sambung.plugins import Registry, load_plugins
from sambung.runtime.admin import admin_app
from sambung.runtime.daemon import Daemon
from sambung.store import DeadLetterQuery, Store

# Examples per fuzz test are multiplied by this (HOSTILE_SCALE=20 for a long hunt; the failing
# example is printed whatever the scale, and HOSTILE_RANDOM=1 draws new ones).
SCALE = float(os.environ.get("HOSTILE_SCALE", "1"))


def fuzz(examples: int) -> settings:
    """Hypothesis settings for one fuzz test: bounded and reproducible.

    The same examples on every run (derandomized, no example database to drift with), and no
    per-example deadline (a loaded CI machine is slow, not wrong).
    """
    return settings(
        max_examples=max(1, int(examples * SCALE)),
        deadline=None,
        derandomize=not os.environ.get("HOSTILE_RANDOM"),
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


OUTLET = "kemang"
MAX_BODY_BYTES = 64 * 1024
# Every answer the webhook endpoint documents for input a sender controls (DESIGN.md, webhooks).
# 503 is not among them: the store is up throughout, so it would mean input was taken for an
# outage.
STATUSES = frozenset({200, 400, 401, 413, 422})

REGISTRY: Registry = load_plugins()


def connectors_with(mode: Mode) -> list[str]:
    """Names of the installed connectors that support `mode`, found through their entry points."""
    return sorted(name for name, cls in REGISTRY.connectors.items() if mode in cls.modes)


def block_for(cls: type[Connector], mode: Mode, **extra: Any) -> dict[str, Any]:
    """A YAML block for `cls` in `mode`: every field that mode requires gets a test secret."""
    block: dict[str, Any] = {"mode": mode.value, **extra}
    model = cls.Settings
    needed = [n for n, f in model.model_fields.items() if f.is_required() and n not in block]
    needed += getattr(model, "required_in_mode", {}).get(mode, ())
    for name in needed:
        block.setdefault(name, f"hostile-{cls.name}-{name}-0f3c")
    return block


ADMIN_TOKEN = "hostile-admin-token-5d2e9b"


def configured(
    workdir: Path,
    blocks: Mapping[str, dict[str, Any]],
    store_url: str,
    server: Mapping[str, Any] | None = None,
) -> LoadedConfig:
    """The YAML of one outlet (`OUTLET`, Jakarta) with `blocks`, written and loaded."""
    document = {
        "store": {"url": store_url},
        "server": dict(server or {}),
        "log": {"level": "error"},
        "outlets": [
            {"id": OUTLET, "name": "Kemang", "timezone": "Asia/Jakarta", "connectors": dict(blocks)}
        ],
    }
    path = workdir / "sambung.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return load_config(path, REGISTRY, environ={})


@asynccontextmanager
async def daemon_app(
    workdir: Path,
    clock: Clock,
    blocks: Mapping[str, dict[str, Any]],
    store_url: str,
    *,
    admin: bool = False,
) -> AsyncIterator[tuple[Daemon, TestClient[Any, Any]]]:
    """The daemon's real public app (or, with `admin`, its admin app, behind `ADMIN_TOKEN`) for
    one outlet with `blocks`, on `store_url`, served in process."""
    server: dict[str, Any] = {"public": {"port": 0, "max_body_bytes": MAX_BODY_BYTES}}
    if admin:
        server["admin"] = {"host": "127.0.0.1", "port": 0, "token": ADMIN_TOKEN}
    daemon = Daemon(configured(workdir, blocks, store_url, server), REGISTRY, clock=clock)
    await daemon.store.open()
    app = admin_app(daemon, ADMIN_TOKEN) if admin else daemon.public_app()
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield daemon, client
    finally:
        await client.close()
        await daemon.store.close()


def webhook_path(name: str) -> str:
    """The URL path a vendor posts `name`'s webhooks to."""
    return f"{WEBHOOK_PATH}/{name}/{OUTLET}"


def target(daemon: Daemon, name: str) -> WebhookConnector:
    """The daemon's own instance of webhook connector `name`."""
    return daemon.webhook_targets.by_outlet[(name, OUTLET)]


def examples(connector: WebhookConnector, count: int = 6) -> list[WebhookRequest]:
    """The connector's realistic signed webhooks (from its fake), as many as it offers."""
    found = (connector.example_webhook(n) for n in range(1, count + 1))
    return [request for request in found if request is not None]


PLUGINS = Path(__file__).resolve().parents[2] / "plugins"


def recorded(name: str, suffix: str) -> list[bytes]:
    """The payloads recorded in plugin `name`'s own test fixtures (none for a plugin not in
    this repo): real vendor shapes beside what its fake generates."""
    folder = PLUGINS / name / "tests" / "fixtures"
    return [path.read_bytes() for path in sorted(folder.glob(f"*{suffix}"))]


def check_record(record: BaseModel, where: str = "") -> None:
    """Every amount a bounded finite Decimal, every datetime aware, every text real Unicode."""
    for name, value in record:
        values = value if isinstance(value, tuple | list) else (value,)
        for item in values:
            at = f"{where}{name}"
            assert not isinstance(item, float), f"{at} is a float"
            if isinstance(item, Decimal):
                assert item.is_finite(), f"{at} is not finite: {item!r}"
                bounded_amount(item, at)  # raises when digits exceed what records keep
            elif isinstance(item, datetime):
                assert item.utcoffset() is not None, f"{at} is naive: {item!r}"
            elif isinstance(item, date):
                assert 2000 <= item.year <= 2100, f"{at} is implausible: {item!r}"
            elif isinstance(item, str):
                item.encode("utf-8")  # a lone surrogate raises here
                assert "\x00" not in item or name != "external_id", f"{at} holds a NUL"
            elif isinstance(item, BaseModel):
                check_record(item, f"{at}.")


async def check_store(store: Store) -> int:
    """Check every stored record (as the store gives it back); returns how many there are."""
    stored = await store.list_records(limit=1_000_000)
    for row in stored:
        record: Record = RECORD_KINDS[row.kind].model_validate_json(row.payload)
        check_record(record)
    return len(stored)


async def replay_all(store: Store, loaded: LoadedConfig, clock: Clock) -> dict[str, int]:
    """Replay every open dead letter, as an operator would after a fix; outcomes counted.

    A kept body is the sender's, byte for byte: replaying it must answer, never raise.
    """
    service = DeadLetters(store, loaded, clock=clock)
    letters = await store.find_dead_letters(DeadLetterQuery(limit=1_000_000))
    counts: dict[str, int] = {}
    for outcome in await service.replay([letter.id for letter in letters]):
        assert outcome.result in ("replayed", "still_failing"), outcome
        counts[outcome.result] = counts.get(outcome.result, 0) + 1
    return counts
