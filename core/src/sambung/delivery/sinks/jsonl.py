"""The `jsonl` sink: one JSON line per delivery in a local file, fsynced, rotated by size."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path

from pydantic import Field

from sambung.errors import RetriableError

from . import Delivery, DeliveryResult, Sink, SinkSettings


class JsonlSettings(SinkSettings):
    """The file (relative to the YAML's folder) and when to rotate it."""

    path: Path
    max_bytes: int = Field(100 * 1024 * 1024, ge=1024)
    keep: int = Field(5, ge=1, le=1000)


class JsonlSink(Sink[JsonlSettings]):
    """Appends each delivery's JSON envelope as a line; the simplest on-premises hand-off."""

    name = "jsonl"
    max_batch = 500

    async def open(self) -> None:
        """Resolve the path and make its folder."""
        path = self.settings.path
        self.path = path if path.is_absolute() else self.context.base_dir / path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = asyncio.Lock()

    async def deliver(self, batch: Sequence[Delivery]) -> list[DeliveryResult]:
        """Append the batch and fsync once; a failed write fails (and retries) the whole batch."""
        data = b"".join(item.body() + b"\n" for item in batch)
        try:
            async with self._lock:
                await asyncio.to_thread(self._append, data)
        except OSError as err:  # a full disk, an unmounted share: passing, so retried
            failure = RetriableError(f"cannot write {self.path}: {err.strerror or err}")
            return [failure] * len(batch)
        return [None] * len(batch)

    def _append(self, data: bytes) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            size = 0
        if size and size + len(data) > self.settings.max_bytes:
            self._rotate()
        with self.path.open("ab") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())

    def _rotate(self) -> None:
        """events.jsonl → events.jsonl.1 → … → events.jsonl.<keep>, the oldest dropped."""
        keep = self.settings.keep
        oldest = self.path.with_name(f"{self.path.name}.{keep}")
        oldest.unlink(missing_ok=True)
        for index in range(keep - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if older.exists():
                older.rename(self.path.with_name(f"{self.path.name}.{index + 1}"))
        self.path.rename(self.path.with_name(f"{self.path.name}.1"))
