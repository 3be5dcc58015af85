"""The test kit's sink checks, run against the built-in `http` and `jsonl` sinks."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sambung.delivery.sinks.http import HttpSink
from sambung.delivery.sinks.jsonl import JsonlSink
from sambung.testing.conformance import SinkConformance
from sambung.testing.receiver import Receiver

SECRET = "whsec_" + base64.b64encode(b"conformance-secret-32-bytes-long").decode()


class TestHttpSinkConformance(SinkConformance):
    sink = HttpSink

    @asynccontextmanager
    async def destination(self, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
        receiver = Receiver(SECRET)
        url = await receiver.start()
        try:
            yield {"url": url, "secret": SECRET}
        finally:
            await receiver.stop()

    def unreachable(self) -> dict[str, Any]:
        return {"url": "http://127.0.0.1:9/webhooks", "secret": SECRET, "timeout_seconds": 2}


class TestJsonlSinkConformance(SinkConformance):
    sink = JsonlSink

    @asynccontextmanager
    async def destination(self, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
        yield {"path": str(tmp_path / "records.jsonl")}

    def unreachable(self) -> dict[str, Any]:
        # Nothing can be created in /proc, whoever runs the test: every write fails.
        return {"path": "/proc/sambung-conformance.jsonl"}
