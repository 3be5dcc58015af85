"""The simulator's file drops: now and then a CSV export lands in an outlet's inbox.

Every third file carries one bad row (the second file dropped is the first such), so a
newcomer running `make run` sees a file go to `processed/` and another go to `failed/` beside
its `.errors.csv`. Files are written under a temporary name and renamed, as a well-behaved
export tool would.
"""

from __future__ import annotations

import asyncio
import os
import random
from typing import TYPE_CHECKING

import structlog

from sambung.intake.connections import file_drop_connections, file_drop_connector
from sambung.intake.filedrop import inbox_of

if TYPE_CHECKING:
    from .daemon import Daemon

log = structlog.get_logger(__name__)


async def drop_files(daemon: Daemon, *, interval: float = 10.0) -> None:
    """Drop an example export into a random file-drop inbox about every `interval` seconds."""
    targets = []
    for connection in file_drop_connections(daemon.loaded):
        connector = file_drop_connector(connection, daemon.clock, bound_to="simulator")
        if connector.example_file(1) is not None:
            targets.append((connector, inbox_of(daemon.loaded, connection)))
    if not targets:
        return
    log.info("simulator.dropping_files", inboxes=[str(inbox) for _, inbox in targets])
    sequence = 0
    while True:
        await asyncio.sleep(interval * random.uniform(0.5, 1.0) if sequence else 3.0)
        sequence += 1
        connector, inbox = random.choice(targets)
        bad = sequence % 3 == 2
        content = connector.example_file(sequence, bad_row=bad)
        if content is None:
            continue
        name = f"simulated-{connector.name}-{sequence:04d}.csv"
        inbox.mkdir(parents=True, exist_ok=True)
        temporary = inbox / f"{name}.part"
        temporary.write_bytes(content)
        os.replace(temporary, inbox / name)
        log.info("simulator.file_dropped", file=name, inbox=str(inbox), bad_row=bad)
