"""The daemon's store writer process killed under load: nothing acknowledged is lost."""

from __future__ import annotations

import os
import signal
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from sambung.testing.daemon import DaemonProcess

from .test_crash_e2e import CONFIG, sale_ids, send, stored


def writer_pids(daemon: DaemonProcess) -> list[int]:
    """The daemon's child processes that run the store's writer."""
    assert daemon.process is not None
    found = []
    for task in Path(f"/proc/{daemon.process.pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"sambung.store.writer_child" in cmdline:
                found.append(int(child))
    return found


async def test_sigkill_of_the_writer_process_loses_no_acknowledged_webhook(
    sambung_daemon: Any, hello_site: Path
) -> None:
    daemon = sambung_daemon(CONFIG, env={"PYTHONPATH": str(hello_site)})
    [writer] = writer_pids(daemon)
    ids = sale_ids(300)
    acknowledged: set[str] = set()
    with ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(send, daemon, transaction_id) for transaction_id in ids]
        killed = False
        for future in as_completed(futures):
            transaction_id, status = future.result()
            # The group in flight when the writer died is answered 503: the vendor retries.
            assert status in (200, 503), f"{transaction_id}: unexpected {status}"
            if status == 200:
                acknowledged.add(transaction_id)
            if not killed and len(acknowledged) >= len(ids) // 3:
                killed = True
                os.kill(writer, signal.SIGKILL)
    assert killed
    # The daemon carried on with a new writer process.
    assert daemon.process is not None and daemon.process.poll() is None
    assert writer not in writer_pids(daemon) and len(writer_pids(daemon)) == 1
    assert '"store.writer_process_died"' in daemon.logs()

    daemon.terminate()
    ids_stored, _ = await stored(daemon)
    assert acknowledged <= ids_stored, f"lost: {sorted(acknowledged - ids_stored)[:5]}"

    # The senders retry everything; each sale is then stored once, with one outbox row.
    daemon.start()
    with ThreadPoolExecutor(16) as pool:
        retried = list(pool.map(lambda i: send(daemon, i), ids))
    assert all(status == 200 for _, status in retried)
    ids_stored, outbox = await stored(daemon)
    assert ids_stored == set(ids)
    assert set(outbox.values()) == {1} and len(outbox) == len(ids)
