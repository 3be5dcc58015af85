"""Fuzzing the daemon's inbox runner: hostile file names and contents, dropped together.

Whatever is dropped, a scan never raises (in the daemon that would crash-loop the inbox), and
every settled file leaves the inbox: to processed/, or to failed/ beside its errors file.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sambung.clock import SystemClock
from sambung.connectors import Mode
from sambung.intake.csvimport import FileImporter
from sambung.intake.filedrop import FAILED, PROCESSED, InboxWatcher, is_temporary
from sambung.store.sqlite import SqliteStore
from sambung.testing import make_connector
from sambung.testing.manual_clock import ManualClock

from ..csvdata import pawoon_export, pawoon_hostile_export
from .harness import REGISTRY, block_for, check_store, fuzz


class Monotonic:
    """The watcher's monotonic clock, moved by the test past the settle time."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Inbox:
    """One inbox, its runner, and the files dropped into it so far."""

    def __init__(self, store: SqliteStore, folder: Path) -> None:
        block = block_for(REGISTRY.connectors["pawoon"], Mode.FILE_DROP, settle_seconds=1)
        connector = make_connector(REGISTRY.connectors["pawoon"], block)
        importer = FileImporter(store, lambda outlet, kind: ("books",), SystemClock())
        self.folder, self.time = folder, Monotonic()
        folder.mkdir(parents=True, exist_ok=True)
        self.watcher = InboxWatcher(connector, importer, folder, monotonic=self.time)  # type: ignore[arg-type]
        self.dropped = 0


@pytest.fixture
async def inbox(tmp_path: Path, clock: ManualClock) -> AsyncIterator[Inbox]:
    """An inbox runner for Pawoon exports on a SQLite store."""
    store = SqliteStore(tmp_path / "sambung.db", synchronous="OFF", clock=clock)
    await store.open()
    try:
        yield Inbox(store, tmp_path / "inbox")
        await check_store(store)
    finally:
        await store.close()


# File names as a till, a USB stick or a careless merchant make them (bytes, as on disk).
NAMES = st.one_of(
    st.sampled_from(
        [b"senin.csv", b"caf\xe9.csv", b"\xff\xfe.csv", b"=cmd.csv", b"a b;c.csv", b"NUL.csv"]
    ),
    st.binary(min_size=1, max_size=40).map(lambda name: name.replace(b"/", b"_")),
    st.text(min_size=1, max_size=40).map(lambda name: name.encode("utf-8", "surrogateescape")),
).filter(lambda name: not {0, 47} & set(name) and name not in (b".", b"..") and len(name) <= 200)
CONTENTS = st.one_of(
    st.integers(0, 30).map(lambda n: pawoon_export(n, start=n * 1000)),
    st.integers(1, 10).map(lambda n: pawoon_hostile_export(n, start=n * 100)),
    st.binary(max_size=200),
)


@fuzz(100)
@given(drops=st.lists(st.tuples(NAMES, CONTENTS), min_size=1, max_size=4))
async def test_whatever_is_dropped_leaves_the_inbox_and_never_stops_it(
    inbox: Inbox, drops: list[tuple[bytes, bytes]]
) -> None:
    names = []
    for raw_name, content in drops:
        name = os.fsdecode(raw_name)
        if is_temporary(name) or name in (PROCESSED, FAILED):
            continue  # left alone by design: someone is still writing it
        (inbox.folder / name).write_bytes(content)
        names.append(name)
    await inbox.watcher.scan_once()
    inbox.time.now += 2
    await inbox.watcher.scan_once()
    left = {entry.name for entry in os.scandir(inbox.folder)} - {PROCESSED, FAILED}
    assert not left & set(names), f"still in the inbox: {sorted(left & set(names))!r}"
