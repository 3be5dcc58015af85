"""The test kit's standard sink checks, run against the Jurnal sink and its fake."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sambung.testing.conformance import SinkConformance
from sambung_jurnal import JurnalSink
from sambung_jurnal.fake import FakeJurnal

CLIENT, SECRET = "conformance-client", "conformance-secret"


def block(url: str) -> dict[str, Any]:
    return {
        "client_id": CLIENT,
        "client_secret": SECRET,
        "base_url": url,
        "post": "per_transaction",
        "default_item": "Penjualan",
        "default_customer": "Pelanggan Umum",
    }


class TestJurnalConformance(SinkConformance):
    sink = JurnalSink

    @asynccontextmanager
    async def destination(self, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
        async with FakeJurnal(client_id=CLIENT, client_secret=SECRET).serve() as url:
            yield block(url)

    def unreachable(self) -> dict[str, Any]:
        return {**block("http://127.0.0.1:9"), "timeout_seconds": 2}
