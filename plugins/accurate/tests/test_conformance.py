"""The test kit's standard sink checks, run against the Accurate sink and its fake."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sambung.testing.conformance import SinkConformance
from sambung_accurate import AccurateSink
from sambung_accurate.fake import FakeAccurate

TOKEN, SECRET = "aat.MDAwMDA.conformance-token", "conformance-secret"


def block(url: str) -> dict[str, Any]:
    return {
        "api_token": TOKEN,
        "signature_secret": SECRET,
        "account_url": url,
        "post": "per_transaction",
        "items": {"KOP-001": "KOPI"},
        "customers": {"kemang": "C-KEMANG"},
        "branches": {"kemang": "Kemang"},
    }


class TestAccurateConformance(SinkConformance):
    sink = AccurateSink

    @asynccontextmanager
    async def destination(self, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
        fake = FakeAccurate(api_token=TOKEN, signature_secret=SECRET, items={"KOPI"})
        async with fake.serve() as url:
            yield block(url)

    def unreachable(self) -> dict[str, Any]:
        return {**block("http://127.0.0.1:9"), "timeout_seconds": 2}
