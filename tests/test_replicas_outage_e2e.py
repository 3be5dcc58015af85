"""Replicas on one real PostgreSQL when the database cuts their sessions, and when one is frozen.

The database terminates the replicas' connections (`pg_terminate_backend`, as a failover, a
restart of the database or an idle-connection reaper does) while webhooks arrive, polls run and
deliveries are in flight: deliveries resume on every replica without a restart, `/readyz`
answers 503 naming the loops while they cannot work and 200 again after, the receiver never has
one webhook-id in flight twice, revisions arrive in order, and every acknowledged webhook is
stored and delivered. A poller frozen with SIGSTOP until its lease passed on commits nothing
when it resumes: the commit of each page is fenced by the lease.

Only this test's sessions are terminated: each replica names its sessions
(`application_name=<tag>-rN` in its store URL), and other tests share the server.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import yaml
from sambung.testing.daemon import DaemonProcess, HttpClient
from sambung.testing.pytest_plugin import POSTGRES_TEST_URL
from sambung.testing.receiver import Answer, Receiver, ReceiverThread

from .test_outbox_e2e import wait_until
from .test_poll_e2e import serving
from .test_replicas_e2e import (
    ADMIN_TOKEN,
    OUTLETS,
    SINK_SECRET,
    TTL,
    Webhooks,
    assert_revisions_in_order,
    config,
    loop_owners,
    outbox,
    qasir,
    records,
    selling,
    status_of,
)


def cut(application_name: str) -> int:
    """Terminate every session whose application_name starts with this; how many there were."""

    async def run() -> int:
        conn = await asyncpg.connect(POSTGRES_TEST_URL)
        try:
            found: int = await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE starts_with(application_name, $1) AND pid <> pg_backend_pid()",
                application_name,
            )
            return found
        finally:
            await conn.close()

    return asyncio.run(run())


def readiness(replica: DaemonProcess) -> tuple[int, list[str]]:
    """The replica's `/readyz`: (status, problems)."""
    document = yaml.safe_load(replica.config_path.read_text(encoding="utf-8"))
    port = document["server"]["admin"]["port"]
    try:
        status, body = HttpClient(f"http://127.0.0.1:{port}").get(
            "/readyz", {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
    except OSError:
        return 0, ["no answer"]
    return status, list(body.get("problems", [])) if isinstance(body, dict) else [str(body)]


class ReadinessWatch:
    """Asks every replica's `/readyz` over and over from a thread; keeps what they answered."""

    def __init__(self, replicas: list[DaemonProcess]) -> None:
        self.replicas = replicas
        self.answers: list[tuple[float, str, int, list[str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for n, replica in enumerate(self.replicas):
                status, problems = readiness(replica)
                self.answers.append((time.monotonic(), f"r{n}", status, problems))
            self._stop.wait(0.1)

    def __enter__(self) -> ReadinessWatch:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def loop_problems(self) -> list[str]:
        """Every loop problem any replica named while watched."""
        return [
            problem
            for _, _, status, problems in self.answers
            if status == 503
            for problem in problems
            if problem.startswith("loop ")
        ]


def tagged(store_url: str, tag: str, n: int) -> str:
    """Replica n's store URL: the same schema, its sessions named `<tag>-rN`."""
    return f"{store_url}&application_name={tag}-r{n}"


def test_deliveries_resume_without_restarts_after_the_database_cuts_the_replicas_sessions(
    sambung_daemon: Any, postgres_url: str, tmp_path: Path
) -> None:
    tag = f"e2e21-{secrets.token_hex(4)}"
    vendor, receiver = qasir(latency=0.01), Receiver(SINK_SECRET)
    # Each delivery takes a moment, so deliveries are in flight whenever sessions are cut.
    receiver.default = Answer(204, delay=0.05)
    inboxes = tmp_path / "inboxes"
    with serving(vendor) as vendor_url, ReceiverThread(receiver):
        replicas = [
            sambung_daemon(
                config(tagged(postgres_url, tag, n), vendor_url, receiver.url, inboxes, f"r{n}")
            )
            for n in range(3)
        ]
        processes = [replica.process for replica in replicas]
        with selling(vendor), Webhooks(replicas) as load:
            wait_until(lambda: len(loop_owners(status_of(replicas[0]))) == len(OUTLETS), "owners")
            wait_until(lambda: len(receiver.seen_ids()) > 100, "deliveries under way")

            # One replica's sessions cut, again and again, for longer than the others take to
            # look for dead replicas, while each of its deliveries takes half a second: it is
            # alive, so its claims stay its own and nothing of it goes out twice at once.
            receiver.default = Answer(204, delay=0.5)
            until = time.monotonic() + 12.0
            while time.monotonic() < until:
                cut(f"{tag}-r0")
                time.sleep(0.25)
            receiver.default = Answer(204, delay=0.05)

            # Every replica's sessions, for a few seconds: nothing can reach the database.
            with ReadinessWatch(replicas) as watch:
                until = time.monotonic() + 4.0
                killed = 0
                while time.monotonic() < until:
                    killed += cut(tag)
                    time.sleep(0.1)
                cut_over = time.monotonic()
                delivered_then = receiver.count
                wait_until(lambda: receiver.count > delivered_then + 20, "deliveries resumed", 60)
                resumed_after = time.monotonic() - cut_over
                # Ready again as soon as the loops work again, not a crash-loop window later.
                wait_until(lambda: all(readiness(r)[0] == 200 for r in replicas), "ready", 30)
                ready_after = time.monotonic() - cut_over
            assert killed > 0
            acknowledged_then = len(load.acknowledged)
            wait_until(lambda: len(load.acknowledged) > acknowledged_then + 30, "webhooks again")
        # While they could not work, the loops were named; none is left once they recovered.
        assert watch.loop_problems(), watch.answers[-10:]
        assert all(readiness(r)[0] == 200 for r in replicas)

        # The poll loops carried on too: every sale polled into every outlet, each stored once.
        sales = len(vendor.rows)
        wait_until(
            lambda: len(records(postgres_url, "qasir")) == sales * len(OUTLETS), "every sale", 120
        )
        assert {r.revision for r in records(postgres_url, "qasir")} == {1}
        assert set(vendor.max_in_flight_by_loop.values()) == {1}, vendor.max_in_flight_by_loop
        # Every acknowledged webhook is stored in its last version, and everything goes out.
        stored = {(r.outlet, r.external_id): r for r in records(postgres_url, "pawoon")}
        for (outlet, transaction), total in load.acknowledged.items():
            found = stored.get((outlet, transaction))
            assert found is not None, f"acknowledged webhook {outlet}/{transaction} lost"
            assert json.loads(found.payload)["total"] == str(total)
        wait_until(lambda: set(outbox(postgres_url).values()) == {"delivered"}, "deliveries", 120)
        assert receiver.seen_ids() == set(outbox(postgres_url))
        assert receiver.in_flight_twice() == {}, "one webhook-id in flight twice at once"
        assert_revisions_in_order(receiver)
        # No replica was restarted: the same processes, all still running.
        assert [replica.process for replica in replicas] == processes
        assert all(p is not None and p.poll() is None for p in processes)
        print(
            f"\nsessions cut {killed}, deliveries resumed {resumed_after:.1f}s and every replica"
            f" ready {ready_after:.1f}s after the cuts stopped; {len(receiver.seen_ids())} ids"
            f" delivered, {len(load.acknowledged)} webhooks acknowledged, none in flight twice"
        )


def events(log: str, event: str) -> list[dict[str, Any]]:
    """The JSON log lines of one event."""
    found = []
    for line in log.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("event") == event:
            found.append(entry)
    return found


def watch_page_commits(store_url: str) -> None:
    """Record every committed poll page in `page_commits` (who, when): a row trigger on the
    cursor upsert each page carries, so the record commits or rolls back with the page."""

    async def run() -> None:
        conn = await asyncpg.connect(store_url)
        try:
            await conn.execute(
                "CREATE TABLE page_commits (at timestamptz NOT NULL, replica text NOT NULL,"
                " outlet text NOT NULL, value text NOT NULL);"
                " CREATE FUNCTION note_page_commit() RETURNS trigger LANGUAGE plpgsql AS $$"
                " BEGIN INSERT INTO page_commits VALUES (clock_timestamp(),"
                " current_setting('application_name'), NEW.outlet, NEW.value); RETURN NEW;"
                " END $$;"
                " CREATE TRIGGER note_page_commit BEFORE INSERT ON cursors"
                " FOR EACH ROW EXECUTE FUNCTION note_page_commit();"
            )
        finally:
            await conn.close()

    asyncio.run(run())


def page_commits(store_url: str, replica: str, since: datetime) -> list[tuple[Any, ...]]:
    """The poll pages `replica` committed after `since` (by the database's clock)."""

    async def run() -> list[tuple[Any, ...]]:
        conn = await asyncpg.connect(store_url)
        try:
            rows = await conn.fetch(
                "SELECT at, outlet, value FROM page_commits"
                " WHERE replica = $1 AND at > $2 ORDER BY at",
                replica,
                since,
            )
            return [tuple(row) for row in rows]
        finally:
            await conn.close()

    return asyncio.run(run())


def freeze_the_busiest_and_thaw(replicas: list[DaemonProcess], store_url: str, tag: str) -> None:
    """SIGSTOP the replica owning most poll loops mid-page until the other has taken every one
    of them over, then SIGCONT it: it must commit nothing, and stop its loops (`lease.lost`)."""
    owners = loop_owners(status_of(replicas[1]))
    frozen_id = max(sorted(set(owners.values())), key=list(owners.values()).count)
    frozen, other = (replicas[0], replicas[1]) if frozen_id == "r0" else (replicas[1], replicas[0])
    held = sorted(name for name, owner in owners.items() if owner == frozen_id)
    sessions = f"{tag}-{frozen_id}"
    started = datetime.now(UTC)
    wait_until(lambda: page_commits(store_url, sessions, started), "the replica commits pages")
    paused = datetime.now(UTC)
    frozen.pause()
    paused_at = len(frozen.logs())

    def taken_over() -> bool:
        now = loop_owners(status_of(other))
        return all(now.get(name) not in (None, frozen_id) for name in held)

    wait_until(taken_over, "the frozen replica's loops taken over")
    time.sleep(TTL / 2)  # the new owner polls meanwhile; the frozen one's page waits for it
    frozen.resume()
    # It finds out it lost its leases (a fenced commit or a failed renewal tells it).
    wait_until(
        lambda: len(events(frozen.logs()[paused_at:], "lease.lost")) >= len(held),
        "the thawed replica stops its loops",
    )
    time.sleep(1.0)  # anything it still had in hand would be committed by now
    committed = page_commits(store_url, sessions, paused)
    assert committed == [], f"{frozen_id} committed pages after its lease passed: {committed}"


def test_a_poller_frozen_until_its_lease_passed_commits_nothing_when_it_resumes(
    sambung_daemon: Any, postgres_url: str, tmp_path: Path
) -> None:
    tag = f"e2e21-{secrets.token_hex(4)}"
    # Each vendor request is slow and sales arrive faster than pages of 5 are read, so a run
    # never ends: the frozen poller is mid-page, and thaws holding a page it fetched under a
    # lease that has passed on.
    vendor, receiver = qasir(latency=0.6), Receiver(SINK_SECRET)
    inboxes = tmp_path / "inboxes"
    with serving(vendor) as vendor_url, ReceiverThread(receiver), selling(vendor, every=0.05):
        replicas = [
            sambung_daemon(
                config(tagged(postgres_url, tag, n), vendor_url, receiver.url, inboxes, f"r{n}")
            )
            for n in range(2)
        ]
        watch_page_commits(postgres_url)
        wait_until(lambda: len(loop_owners(status_of(replicas[1]))) == len(OUTLETS), "owners")
        for _ in range(2):  # each replica frozen once
            freeze_the_busiest_and_thaw(replicas, postgres_url, tag)
        # The loops went on under their new owners, every sale stored once.
        vendor.latency = 0.01
        sales = len(vendor.rows)
        wait_until(
            lambda: len(records(postgres_url, "qasir")) >= sales * len(OUTLETS), "every sale", 120
        )
        assert {r.revision for r in records(postgres_url, "qasir")} == {1}
        assert set(vendor.max_in_flight_by_loop.values()) == {1}, vendor.max_in_flight_by_loop


class TableLock:
    """Holds an ACCESS EXCLUSIVE lock on one table of the test's schema while the block runs:
    every query on it waits (a database that accepts connections but answers nothing there)."""

    def __init__(self, store_url: str, table: str) -> None:
        self.store_url, self.table = store_url, table
        self._locked, self._release = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._hold()), daemon=True)

    async def _hold(self) -> None:
        conn = await asyncpg.connect(self.store_url)
        try:
            async with conn.transaction():
                await conn.execute(f"LOCK TABLE {self.table} IN ACCESS EXCLUSIVE MODE")
                self._locked.set()
                await asyncio.to_thread(self._release.wait, 120)
        finally:
            await conn.close()

    def __enter__(self) -> TableLock:
        self._thread.start()
        assert self._locked.wait(30)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._release.set()
        self._thread.join(30)


def test_a_stalled_loop_makes_the_replica_not_ready_and_sambung_status_names_it(
    sambung_daemon: Any, postgres_url: str, tmp_path: Path
) -> None:
    vendor, receiver = qasir(latency=0.01), Receiver(SINK_SECRET)
    with serving(vendor) as vendor_url, ReceiverThread(receiver):
        document = config(postgres_url, vendor_url, receiver.url, tmp_path / "in", "r0")
        document["server"]["readiness"] = {"stall_min": "2s"}
        replica = sambung_daemon(document)

        def status() -> str:
            """`sambung status`, read up to the end of its loops section (the rest of it reads
            the store, which may be the part that hangs)."""
            shown = subprocess.Popen(
                [sys.executable, "-m", "sambung", "status", "-c", str(replica.config_path)],
                stdout=subprocess.PIPE,
                text=True,
                env={**replica.env, "PYTHONUNBUFFERED": "1"},
            )
            assert shown.stdout is not None
            lines = []
            try:
                for line in shown.stdout:
                    if not line.strip():
                        break
                    lines.append(line.rstrip())
            finally:
                shown.kill()
                shown.wait(10)
            return "\n".join(lines)

        wait_until(lambda: readiness(replica)[0] == 200, "ready")
        assert status() == "loops: every loop running"
        # The outbox hangs: its loops complete no cycle, though nothing crashed.
        with TableLock(postgres_url, "outbox"):
            wait_until(lambda: readiness(replica)[0] == 503, "not ready while stalled")
            _, problems = readiness(replica)
            assert any(p.startswith("loop outbox.backend: stalled") for p in problems), problems
            shown = status()  # the same problems as `/api/v1/status`, loop by loop
            assert shown.startswith("loops: NOT READY"), shown
            assert "outbox.backend" in shown and "stalled" in shown, shown
        wait_until(lambda: readiness(replica)[0] == 200, "ready again")
        assert status() == "loops: every loop running"
