"""Several `sambung run` replicas on one real PostgreSQL database, under webhook and poll load.

Three replicas share the store, a fake Qasir API (one key, so one poll loop, per outlet) and a
receiver. One replica is SIGKILLed: its loops move to the others once its leases expire (never
before), no acknowledged webhook is lost, no poll page is stored twice, the receiver gets every
delivery id, and the revisions of one record arrive in order. Two replicas handing loops over on
SIGTERM never poll one loop at the same time (the fake counts requests in flight per loop).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sambung.store import Lease, Store, StoredRecord, open_store
from sambung.testing.daemon import DaemonProcess, HttpClient, free_port
from sambung.testing.receiver import Receiver, ReceiverThread
from sambung_qasir.fake import QasirFake

from .csvdata import pawoon_export
from .payloads import PAWOON_SECRET, WEBHOOKS, pawoon_sale, signed
from .test_outbox_e2e import wait_until
from .test_poll_e2e import serving

SINK_SECRET = "whsec_" + base64.b64encode(b"e2e-replicas-secret-at-least-24").decode()
ADMIN_TOKEN = "admin-token-for-replica-tests"
TTL = 3.0
OUTLETS = ("kemang", "senopati", "bintaro")


def key_of(outlet: str) -> str:
    return f"qasir-key-{outlet}"


def config(
    store_url: str, vendor_url: str, receiver_url: str, inboxes: Path, replica: str
) -> dict[str, Any]:
    """One replica's YAML: every outlet on Pawoon webhooks and a file-drop inbox every replica
    sees (`inboxes/OUTLET`), and on Qasir polling."""
    return {
        "store": {"url": store_url},
        "replicas": {"id": replica, "lease_ttl": f"{TTL}s"},
        "server": {"admin": {"host": "127.0.0.1", "port": free_port(), "token": ADMIN_TOKEN}},
        "outlets": [
            {
                "id": outlet,
                "name": outlet.title(),
                "connectors": {
                    "pawoon": {
                        "mode": ["webhook", "file-drop"],
                        "webhook_secret": PAWOON_SECRET,
                        "inbox": str(inboxes / outlet),
                        "settle_seconds": 0.3,
                        "poll_seconds": 0.1,
                    },
                    "qasir": {
                        "mode": "poll",
                        "api_key": key_of(outlet),
                        "base_url": f"{vendor_url}/v1",
                        "per_page": 5,
                        "interval": "15s",
                    },
                },
            }
            for outlet in OUTLETS
        ],
        "sinks": {"backend": {"type": "http", "url": receiver_url, "secret": SINK_SECRET}},
    }


def read(store_url: str, query: Callable[[Store], Awaitable[Any]]) -> Any:
    """Run one read against the replicas' database on a store connection of the test's own."""

    async def run() -> Any:
        opened = open_store(store_url, base_dir=Path("."))
        await opened.open()
        try:
            return await query(opened)
        finally:
            await opened.close()

    return asyncio.run(run())


def leases(store_url: str, prefix: str) -> dict[str, Lease]:
    """Every lease whose name starts with `prefix`, by name."""
    found = read(store_url, lambda store: store.list_leases(prefix))
    return {lease.name: lease for lease in found}


def records(store_url: str, source_system: str) -> list[StoredRecord]:
    """Every stored record of one source system."""
    return list(read(store_url, lambda s: s.list_records(source_system=source_system, limit=10**6)))


def outbox(store_url: str) -> dict[str, str]:
    """idempotency key → status of every outbox row."""
    rows = read(store_url, lambda store: store.list_outbox(limit=10**6))
    return {row.idempotency_key: row.status for row in rows}


class Webhooks:
    """Sends signed Pawoon sales round-robin to the replicas from a thread; remembers which
    were acknowledged. Every fifth sends a second version of an earlier sale."""

    def __init__(self, replicas: list[DaemonProcess]) -> None:
        self.replicas = replicas
        self.acknowledged: dict[tuple[str, str], int] = {}  # (outlet, id) → last total acked
        self.refused = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for n in itertools.count():
            if self._stop.is_set():
                return
            outlet = OUTLETS[n % len(OUTLETS)]
            transaction, total = f"W-{n:05d}", 20000 + n
            if n % 5 == 4:  # a second version of an earlier sale of this outlet
                transaction, total = f"W-{n - 3:05d}", 90000 + n
            body = pawoon_sale(transaction, total=total)
            replica = self.replicas[n % len(self.replicas)]
            try:
                status, _ = replica.post(
                    f"{WEBHOOKS}/pawoon/{outlet}",
                    body,
                    signed(body, PAWOON_SECRET, "X-Webhook-Signature"),
                )
            except OSError:  # that replica is dead: not acknowledged, the vendor would retry
                status = 0
            if status == 200:
                self.acknowledged[(outlet, transaction)] = total
            else:
                self.refused += 1
            time.sleep(0.01)

    def __enter__(self) -> Webhooks:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


@contextmanager
def selling(vendor: QasirFake, every: float = 0.2) -> Iterator[None]:
    """New sales at the vendor while the block runs (every outlet's key sees them all)."""
    stop = threading.Event()
    start = datetime.now(UTC) - timedelta(minutes=30)

    def run() -> None:
        for n in itertools.count(1):
            if stop.wait(every):
                return
            vendor.sale(n, start + timedelta(seconds=n))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


def status_of(replica: DaemonProcess) -> dict[str, Any]:
    """The replica's `/api/v1/status`."""
    document = yaml.safe_load(replica.config_path.read_text(encoding="utf-8"))
    port = document["server"]["admin"]["port"]
    status, body = HttpClient(f"http://127.0.0.1:{port}").get(
        "/api/v1/status", {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert status == 200, body
    return dict(body)


def loop_owners(status: dict[str, Any]) -> dict[str, str]:
    """Live poll-loop leases → owner, as `/api/v1/status` reports them."""
    return {
        lease["lease"]: lease["owner"]
        for lease in status["leases"]
        if lease["lease"].startswith("poll:") and lease["live"]
    }


def qasir(latency: float) -> QasirFake:
    """The fake Qasir with a key per outlet; each request held `latency` seconds, so two pollers
    of one loop would overlap, and be counted."""
    vendor = QasirFake(api_key=key_of(OUTLETS[0]))
    vendor.api_keys |= {key_of(o) for o in OUTLETS}
    vendor.latency = latency
    return vendor


def start(sambung_daemon: Any, count: int, *urls: str, inboxes: Path) -> list[DaemonProcess]:
    """`count` replicas r0, r1, … on one database, vendor, receiver and set of inboxes."""
    return [sambung_daemon(config(*urls, inboxes, f"r{n}")) for n in range(count)]


def drop(inboxes: Path, name: str, data: bytes) -> None:
    """A CSV export appearing in every outlet's inbox at once (written aside, then renamed)."""
    for outlet in OUTLETS:
        folder = inboxes / outlet
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f".{name}").write_bytes(data)
        (folder / f".{name}").rename(folder / name)


def processed(inboxes: Path) -> list[str]:
    """Every file moved to processed/ (a second import would add `NAME.2.csv`) or failed/."""
    return sorted(
        f"{outlet}/{path.parent.name}/{path.name}"
        for outlet in OUTLETS
        for path in (inboxes / outlet).glob("*/*")
    )


def test_a_killed_replica_loses_nothing_and_its_loops_move_within_the_lease_time(
    sambung_daemon: Any, postgres_url: str, tmp_path: Path
) -> None:
    store_url = postgres_url
    vendor, receiver = qasir(latency=0.01), Receiver(SINK_SECRET)
    with serving(vendor) as vendor_url, ReceiverThread(receiver):
        replicas = start(
            sambung_daemon, 3, store_url, vendor_url, receiver.url, inboxes=tmp_path / "inboxes"
        )
        with selling(vendor), Webhooks(replicas) as load:
            wait_until(lambda: len(loop_owners(status_of(replicas[0]))) == len(OUTLETS), "owners")
            wait_until(lambda: len(load.acknowledged) > 60, "webhooks acknowledged")
            owners = loop_owners(status_of(replicas[0]))
            victim_id = max(sorted(set(owners.values())), key=list(owners.values()).count)
            victim = replicas[int(victim_id[1:])]
            victim_loops = sorted(name for name, owner in owners.items() if owner == victim_id)
            victim.kill()
            before = leases(store_url, "poll:")
            survivor = next(r for r in replicas if r is not victim)

            def taken_over() -> bool:
                now_owners = loop_owners(status_of(survivor))
                return all(now_owners.get(name, victim_id) != victim_id for name in victim_loops)

            wait_until(taken_over, "the killed replica's loops taken over")
            after = leases(store_url, "poll:")
            for name in victim_loops:
                old, new = before[name], after[name]
                assert old.owner == victim_id and new.owner != victim_id
                # Never before the killed owner's lease ran out; within a lease time after it.
                assert old.expires_at <= new.acquired_at
                assert new.acquired_at <= old.expires_at + timedelta(seconds=TTL)
            acknowledged_at_kill = len(load.acknowledged)
            wait_until(lambda: len(load.acknowledged) > acknowledged_at_kill + 60, "more webhooks")
        assert load.refused > 0, "some webhooks went to the dead replica"

        # Every sale the vendor has is polled into every outlet, each stored once.
        sales = len(vendor.rows)
        wait_until(
            lambda: len(records(store_url, "qasir")) == sales * len(OUTLETS), "every sale", 120
        )
        polled = records(store_url, "qasir")
        assert {r.revision for r in polled} == {1}, "a poll page was stored twice"
        # Every acknowledged webhook is stored, in its last acknowledged version.
        stored = {(r.outlet, r.external_id): r for r in records(store_url, "pawoon")}
        for (outlet, transaction), total in load.acknowledged.items():
            found = stored.get((outlet, transaction))
            assert found is not None, f"acknowledged webhook {outlet}/{transaction} lost"
            assert json.loads(found.payload)["total"] == str(total)

        # Every outbox row delivered; the receiver saw each delivery id, in record order.
        wait_until(lambda: set(outbox(store_url).values()) == {"delivered"}, "deliveries", 120)
        assert receiver.seen_ids() == set(outbox(store_url))
        assert_revisions_in_order(receiver)
        assert set(vendor.max_in_flight_by_loop.values()) == {1}, vendor.max_in_flight_by_loop
        for replica in replicas:
            if replica is not victim:
                assert replica.terminate() == 0
        # Clean shutdowns released every lease; only the killed replica's heartbeat is left.
        left = leases(store_url, "")
        unreleased = [
            line
            for r in replicas
            if r is not victim
            for line in r.logs().splitlines()
            if '"lease.not_released"' in line
        ]
        assert list(left) == [f"replica:{victim_id}"], (
            {name: lease.owner for name, lease in left.items()},
            unreleased,
        )


def test_two_replicas_never_poll_one_loop_at_once_and_hand_over_on_sigterm(
    sambung_daemon: Any, postgres_url: str, tmp_path: Path
) -> None:
    store_url = postgres_url
    vendor, receiver = qasir(latency=0.02), Receiver(SINK_SECRET)
    with serving(vendor) as vendor_url, ReceiverThread(receiver), selling(vendor, every=0.05):
        inboxes = tmp_path / "inboxes"
        replicas = start(sambung_daemon, 2, store_url, vendor_url, receiver.url, inboxes=inboxes)
        wait_until(lambda: len(loop_owners(status_of(replicas[1]))) == len(OUTLETS), "owners")
        dropped: list[str] = []
        for leaving, staying in ((0, 1), (1, 0)):
            owners = loop_owners(status_of(replicas[staying]))
            gone = f"r{leaving}"
            handed = sorted(name for name, owner in owners.items() if owner == gone)
            before = leases(store_url, "poll:")
            for n in range(2):  # exports arriving while the inboxes change hands
                name = f"export-{leaving}-{n}.csv"
                drop(inboxes, name, pawoon_export(20, start=len(dropped) * 20))
                dropped.append(name)
            assert replicas[leaving].terminate() == 0

            def handed_over(staying: int = staying, handed: list[str] = handed) -> bool:
                owners = loop_owners(status_of(replicas[staying]))
                return all(owners.get(name) == f"r{staying}" for name in handed)

            wait_until(handed_over, "loops handed over")
            after = leases(store_url, "poll:")
            for name in handed:
                # Released on shutdown: taken before the old lease would have run out.
                assert after[name].acquired_at < before[name].expires_at
            replicas[leaving].start()
        wait_until(lambda: len(vendor.max_in_flight_by_loop) == len(OUTLETS), "every loop polled")
        assert set(vendor.max_in_flight_by_loop.values()) == {1}, vendor.max_in_flight_by_loop
        # Every export imported once, by whichever replica held its inbox.
        expected = sorted(f"{o}/processed/{name}" for o in OUTLETS for name in dropped)
        wait_until(lambda: processed(inboxes) == expected, "every export imported")
        rows = {r.external_id for r in records(store_url, "pawoon")}
        assert len(rows) == 20 * len(dropped)
        inbox_owners = {
            lease["lease"]: lease["owner"]
            for lease in status_of(replicas[0])["leases"]
            if lease["lease"].startswith("filedrop:") and lease["live"]
        }
        assert sorted(inbox_owners) == sorted(f"filedrop:{o}/pawoon" for o in OUTLETS)
        # `sambung status` names the owner of every loop and every live replica.
        shown = subprocess.run(
            [sys.executable, "-m", "sambung", "status", "-c", str(replicas[0].config_path)],
            capture_output=True,
            text=True,
            env=replicas[0].env,
            check=True,
        ).stdout
        for name, owner in loop_owners(status_of(replicas[0])).items():
            assert re.search(rf"^{re.escape(name)}\s+{owner}\s+live", shown, re.MULTILINE), shown
        assert "replica:r0" in shown and "replica:r1" in shown


def assert_revisions_in_order(receiver: Receiver) -> None:
    """Per record, the revisions acknowledged never go backwards."""
    last: dict[tuple[str, str, str], int] = {}
    for received in receiver.requests:
        if not 200 <= received.status < 300:
            continue
        payload = received.payload
        record = payload["data"]
        key = (record["outlet"], record["source_system"], record["external_id"])
        assert payload["revision"] >= last.get(key, 0), f"{key} went back a revision"
        last[key] = payload["revision"]
