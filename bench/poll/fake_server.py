"""The fake Qasir API for the poll benchmark: one account per outlet, new sales arriving.

Run by `run.py` in its own process, so its CPU is not counted as the daemon's.
"""

from __future__ import annotations

import argparse
import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from sambung.testing.fakes import json_bytes
from sambung_qasir.fake import QasirFake


class ManyAccounts(QasirFake):
    """Qasir with one account (API key) per outlet; each key sees only its own rows."""

    def __init__(self, outlets: int, **kw: Any) -> None:
        super().__init__(**kw)
        self.by_key: dict[str, QasirFake] = {f"key-{n}": QasirFake(**kw) for n in range(outlets)}
        self.api_keys = set(self.by_key)
        self.sequence = 0

    def add_sale(self, key: str, at: datetime) -> None:
        """A new sale for one account."""
        self.sequence += 1
        self.by_key[key].sale(self.sequence, at)

    async def transactions(self, request: web.Request) -> web.Response:
        """Answer from the caller's own account."""
        key = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        account = self.by_key.get(key)
        if account is None:
            return self.unauthorized()
        since = datetime.fromisoformat(request.query["from_date"])
        page, per_page = int(request.query.get("page", "1")), int(request.query["per_page"])
        rows = account.changed_between(since.replace(microsecond=0), None)
        chunk = rows[(page - 1) * per_page : page * per_page]
        body = {"transactions": [r.data for r in chunk], "meta": {"page": page}}
        return web.Response(body=json_bytes(body), content_type="application/json")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--outlets", type=int, default=1000)
    parser.add_argument("--sales-per-second", type=float, default=20.0)
    args = parser.parse_args()
    vendor = ManyAccounts(args.outlets)
    start = datetime.now(UTC) - timedelta(hours=2)
    for key in vendor.by_key:
        for n in range(5):
            vendor.add_sale(key, start + timedelta(minutes=n))
    async with vendor.serve(port=args.port):
        print("ready", flush=True)
        keys = list(vendor.by_key)
        while True:
            await asyncio.sleep(1 / args.sales_per_second)
            vendor.add_sale(random.choice(keys), datetime.now(UTC))


if __name__ == "__main__":
    asyncio.run(main())
