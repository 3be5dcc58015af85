"""Store-level ingest on SQLite and on PostgreSQL: the same requests through `Store.ingest`.

Two shapes: webhook-shaped requests (a raw body, one record, one outbox row each) with many in
flight, which group commit batches; and poll- or CSV-shaped pages of many records in one request.
No HTTP and no mapping: this is what each backend costs per record. PostgreSQL runs in a fresh
schema of `--postgres` (default: the test server), dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from sambung.models import LineItem, Transaction
from sambung.store import IngestRequest, RawEvent, Store, open_store
from sambung.store.postgres import create_schema, drop_schema

AT = datetime(2026, 11, 26, 13, 15, tzinfo=UTC)


def sale(external_id: str) -> Transaction:
    """A one-line sale."""
    amount = Decimal("27500")
    item = LineItem(name="Es Kopi Susu", quantity=Decimal(1), unit_price=amount, total=amount)
    return Transaction(
        outlet="kemang",
        source_system="pawoon",
        external_id=external_id,
        occurred_at=AT,
        business_date=AT.date(),
        subtotal=amount,
        total=amount,
        items=(item,),
    )


async def measure(store: Store, label: str, requests: int, in_flight: int, pages: int) -> None:
    """Print both figures for one open store."""
    gate = asyncio.Semaphore(in_flight)
    webhooks = [
        IngestRequest(
            raw=RawEvent("kemang", "pawoon", "webhook", f"k{i}", b"{}", AT),
            records=[sale(f"W-{i}")],
            routes=[["backend"]],
        )
        for i in range(requests)
    ]

    async def one(request: IngestRequest) -> None:
        async with gate:
            await store.ingest(request)

    started = time.perf_counter()
    await asyncio.gather(*(one(request) for request in webhooks))
    rate = requests / (time.perf_counter() - started)
    print(f"{label:<10} webhook-shaped, {in_flight} in flight: {rate:8,.0f} requests/s")

    batches = [[sale(f"P{p}-{i}") for i in range(5000)] for p in range(pages)]
    started = time.perf_counter()
    for batch in batches:
        await store.ingest(IngestRequest(records=batch, routes=[["backend"]] * len(batch)))
    rate = pages * 5000 / (time.perf_counter() - started)
    print(f"{label:<10} 5,000-record pages, one at a time: {rate:8,.0f} records/s")


async def main() -> None:
    """Run both backends, SQLite first."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--in-flight", type=int, default=256)
    parser.add_argument("--pages", type=int, default=10)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store = open_store(f"sqlite:///{folder}/bench.db", base_dir=Path(folder))
        await store.open()
        await measure(store, "sqlite", args.requests, args.in_flight, args.pages)
        await store.close()
    name, url = await create_schema(args.postgres, prefix="bench")
    try:
        store = open_store(url, base_dir=Path("."))
        await store.open()
        await measure(store, "postgresql", args.requests, args.in_flight, args.pages)
        await store.close()
    finally:
        await drop_schema(args.postgres, name)


if __name__ == "__main__":
    asyncio.run(main())
