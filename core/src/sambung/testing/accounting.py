"""Test kit for accounting sinks: one outlet, one sink, a real store, the summary loop and the
dispatcher, driven by a clock the test moves.

    async with AccountingRig.start(tmp_path, {"type": "accurate", ...}) as rig:
        await rig.ingest(sale("S-1", at=days_ago(1, 9), items=[("KOPI", "Es Kopi", 2, 18000)]))
        await rig.summarise()
        await rig.drain()
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import yaml

from sambung.clock import SystemClock
from sambung.config import LoadedConfig, load_config
from sambung.delivery.outbox import Dispatcher
from sambung.delivery.sinks import Delivery, Sink, SinkSettings
from sambung.delivery.summaries import SummaryService
from sambung.models import LineItem, Transaction, TransactionType
from sambung.plugins import load_plugins
from sambung.store import DeadLetter, IngestRequest, IngestResult, Store, open_store
from sambung.store.sqlite import SqliteStore

from .manual_clock import ManualClock

JAKARTA = ZoneInfo("Asia/Jakarta")
SINK = "books"
OUTLET = "kemang"


def days_ago(days: int, hour: int, minute: int = 0) -> datetime:
    """An instant `days` local days before today, at hour:minute in Jakarta.

    Relative to the real date, as the rig's clock starts at the real instant: a test that
    builds its sales with it passes on any day.
    """
    today = SystemClock().now().astimezone(JAKARTA).date()
    return datetime.combine(today - timedelta(days=days), time(hour, minute), tzinfo=JAKARTA)


def sale(
    external_id: str,
    *,
    at: datetime,
    items: Sequence[tuple[str | None, str, int | str, int | str]] = (),
    type: TransactionType = TransactionType.SALE,
    tax: int | str = 0,
    service_charge: int | str = 0,
    discount: int | str = 0,
    total: int | str | None = None,
    reverses: str | None = None,
    outlet: str = OUTLET,
    source_system: str = "pawoon",
) -> Transaction:
    """A transaction rung up at `at` from (sku, name, quantity, unit price) lines."""
    lines = tuple(
        LineItem(
            sku=sku,
            name=name,
            quantity=Decimal(quantity),
            unit_price=Decimal(price),
            total=Decimal(quantity) * Decimal(price),
        )
        for sku, name, quantity, price in items
    )
    subtotal = sum((line.total for line in lines), Decimal(0))
    charges = Decimal(tax) + Decimal(service_charge) - Decimal(discount)
    return Transaction.rung_up(
        occurred_at=at,
        tz=JAKARTA,
        total=Decimal(total) if total is not None else subtotal + charges,
        tax=Decimal(tax),
        service_charge=Decimal(service_charge),
        discount=Decimal(discount),
        outlet=outlet,
        source_system=source_system,
        external_id=external_id,
        items=lines,
        type=type,
        reverses_external_id=reverses,
    )


def delivery_of(
    payload: str,
    *,
    id: str = "msg_test",
    outbox_id: int = 1,
    record_id: int = 1,
    revision: int = 1,
    attempt: int = 1,
    created_at: datetime | None = None,
) -> Delivery:
    """A record's unified JSON (a recorded fixture, an outbox row) as a sink is handed it."""
    record = json.loads(payload)
    return Delivery(
        id=id,
        outbox_id=outbox_id,
        sink=SINK,
        outlet=record["outlet"],
        source_system=record["source_system"],
        kind=record["kind"],
        record_id=record_id,
        revision=revision,
        payload=payload,
        attempt=attempt,
        created_at=created_at or SystemClock().now(),
    )


@dataclass
class AccountingRig:
    """A store, the summary loop and the dispatcher around one configured sink."""

    loaded: LoadedConfig
    store: Store
    clock: ManualClock
    dispatcher: Dispatcher
    summaries: SummaryService

    @classmethod
    @asynccontextmanager
    async def start(
        cls,
        folder: Path,
        sink: dict[str, Any],
        *,
        summary_after: str = "23:30",
        retry_schedule: Sequence[float] = (0, 5, 300),
        store_url: str | None = None,
    ) -> AsyncIterator[AccountingRig]:
        """Write the YAML, open the store (SQLite unless `store_url` names another) and the
        sink; close everything afterwards."""
        document = {
            "outlets": [{"id": OUTLET, "name": "Kemang", "timezone": "Asia/Jakarta"}],
            "sinks": {SINK: {**sink, "retry_schedule": list(retry_schedule)}},
            "summaries": {"after": summary_after, "backfill_days": 3},
        }
        path = folder / "sambung.yaml"
        path.write_text(yaml.safe_dump(document), encoding="utf-8")
        loaded = load_config(path, load_plugins())
        # One clock for the store and the loops: the dispatcher finds rows due exactly when the
        # test's clock says they are, whatever the real date.
        clock = ManualClock()
        store = (
            open_store(store_url, base_dir=folder, clock=clock)
            if store_url is not None
            else SqliteStore(folder / "sambung.db", synchronous="OFF", clock=clock)
        )
        await store.open()
        async with aiohttp.ClientSession() as session:
            dispatcher = Dispatcher(store, loaded, load_plugins(), clock=clock, session=session)
            await dispatcher.open()
            try:
                yield cls(loaded, store, clock, dispatcher, SummaryService(store, loaded, clock))
            finally:
                await dispatcher.close()
                await store.close()

    async def ingest(self, *transactions: Transaction) -> IngestResult:
        """Store transactions as a connector would, routed as the YAML says."""
        routes = [self.loaded.sinks_for(t.outlet, t.kind) for t in transactions]
        return await self.store.ingest(IngestRequest(records=transactions, routes=routes))

    async def summarise(self) -> int:
        """One pass of the summary loop."""
        return await self.summaries.run_once()

    async def drain(self, *, rounds: int = 50) -> int:
        """Deliver whatever is due now, until nothing is; returns the rows handled."""
        handled = 0
        for _ in range(rounds):
            count = await self.dispatcher.drain_once(SINK)
            if count == 0:
                break
            handled += count
        return handled

    @property
    def sink(self) -> Sink[SinkSettings]:
        """The sink instance the dispatcher drives."""
        return self.dispatcher.sinks[SINK].sink

    async def deliveries(self) -> list[Delivery]:
        """Every outbox row of the sink as the dispatcher hands it over (to deliver it again,
        as after a crash between delivering and settling)."""
        return [
            delivery_of(
                row.payload,
                id=row.idempotency_key,
                outbox_id=row.id,
                record_id=row.record_id,
                revision=row.revision,
                attempt=row.attempts + 1,
                created_at=row.created_at,
            )
            for row in await self.store.list_outbox(sink=SINK)
        ]

    async def dead_letters(self) -> list[DeadLetter]:
        """The sink's open dead letters."""
        from sambung.store import DeadLetterQuery

        return await self.store.find_dead_letters(DeadLetterQuery(stage="delivery"))
