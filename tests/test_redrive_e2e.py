"""Redrive with a dry run end to end, on both backends: a real daemon, dead letters of two
stages, a dry run that changes nothing, then a real replay reported per group."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from sambung.store import DeliveryQuery, open_store
from sambung.store.base import DeadLetterQuery
from sambung.testing.daemon import DaemonProcess
from sambung.testing.receiver import Receiver

from .payloads import PAWOON_SECRET, WEBHOOKS, pawoon_sale, signed
from .test_deliveries_e2e import cli, daemon_and_receiver
from .test_outbox_e2e import AUTH, SINK_SECRET, send, wait_until


def snapshot(daemon: DaemonProcess, url: str) -> tuple[Any, ...]:
    """Counts and every row a replay could change, read from the daemon's store."""

    async def read() -> tuple[Any, ...]:
        store = open_store(url, base_dir=daemon.workdir)
        await store.open()
        try:
            return (
                await store.counts(),
                await store.list_outbox(limit=10_000),
                await store.find_dead_letters(DeadLetterQuery(status=None, limit=10_000)),
                await store.list_records(limit=10_000),
                await store.list_deliveries(DeliveryQuery(limit=10_000)),
            )
        finally:
            await store.close()

    return asyncio.run(read())


def test_a_dry_run_groups_the_dead_letters_changes_nothing_and_a_replay_reports_per_group(
    sambung_daemon: Any, sambung_store_url: str
) -> None:
    receiver = Receiver(SINK_SECRET)
    receiver.answer_with(422, times=2, body='{"error": "unknown outlet"}')
    with daemon_and_receiver(sambung_daemon, sambung_store_url, receiver) as (
        daemon,
        api,
        running,
    ):
        assert send(daemon, "TRX-1") == 200
        assert send(daemon, "TRX-2") == 200
        unmappable = pawoon_sale(None)
        status, _ = daemon.post(
            f"{WEBHOOKS}/pawoon/kemang",
            unmappable,
            signed(unmappable, PAWOON_SECRET, "X-Webhook-Signature"),
        )
        assert status == 422

        def open_count() -> int:
            _, body = api.get("/api/v1/dead-letters", AUTH)
            return len(body["dead_letters"])

        def archived() -> int:
            _, body = api.get("/api/v1/deliveries?sink=archive&status=delivered", AUTH)
            return len(body["deliveries"])

        wait_until(lambda: open_count() == 3 and archived() == 2, "three dead letters")
        url = sambung_store_url
        before = snapshot(daemon, url)

        grouped = [line.split() for line in cli(daemon, "dlq", "list", "--group").splitlines()]
        assert ["1", "delivery", "backend", "DeliveryRejected", "2", "kemang"] in [
            row[:6] for row in grouped
        ]
        assert ["2", "ingest", "pawoon", "InvalidRecord", "1", "kemang"] in [
            row[:6] for row in grouped
        ]
        dry = cli(daemon, "dlq", "replay", "--dry-run")
        assert "dry run, nothing changed; a replay now would:" in dry
        assert "2 would be requeued (to sink backend (http))" in dry
        assert "1 still fails:" in dry
        as_json = [
            json.loads(line)
            for line in cli(daemon, "dlq", "replay", "--dry-run", "--json").splitlines()
        ]
        assert {(g["stage"], g["target"], g["count"]) for g in as_json} == {
            ("delivery", "backend", 2),
            ("ingest", "pawoon", 1),
        }
        status, answer = api.post(
            "/api/v1/dead-letters/replay", b'{"all": true, "dry_run": true}', AUTH
        )
        assert status == 200 and answer["dry_run"] is True and len(answer["groups"]) == 2
        assert snapshot(daemon, url) == before, "a dry run changes nothing"

        # The receiver takes them now: a real replay of the delivery entries, per group.
        replayed = cli(daemon, "dlq", "replay", "--all", "--stage", "delivery")
        assert ["delivery", "backend", "DeliveryRejected", "2", "requeued"] in [
            line.split() for line in replayed.splitlines()
        ]
        wait_until(lambda: len(running.acknowledged) == 2, "the replayed deliveries")
        _, body = api.get("/api/v1/deliveries?sink=backend&status=delivered", AUTH)
        assert all(row["attempts"] == 1 for row in body["deliveries"])  # attempts reset on requeue
        assert open_count() == 1


def test_a_dry_run_from_the_cli_names_a_sink_the_running_daemon_disabled(
    sambung_daemon: Any, sambung_store_url: str
) -> None:
    receiver = Receiver(SINK_SECRET)
    receiver.answer_with(410, body="gone")
    with daemon_and_receiver(sambung_daemon, sambung_store_url, receiver) as (
        daemon,
        api,
        _running,
    ):
        assert send(daemon, "TRX-1") == 200

        def disabled() -> bool:
            _, body = api.get("/api/v1/status", AUTH)
            return any(s["sink"] == "backend" and s["disabled"] for s in body["sinks"])

        wait_until(disabled, "the 410 to disable the sink")
        dry = cli(daemon, "dlq", "replay", "--dry-run", "--sink", "backend")
        assert "1 would wait: sink backend is disabled (HTTP 410" in dry
        assert "restart sambung once it is fixed" in dry
