"""Delivery attempts end to end, on both backends: a real daemon, a receiver that fails twice."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sambung.redaction import MASK
from sambung.testing.daemon import DaemonProcess, HttpClient, free_port
from sambung.testing.receiver import Receiver, ReceiverThread

from .test_outbox_e2e import AUTH, SINK_SECRET, admin, config, send, wait_until


def cli(daemon: DaemonProcess, *args: str) -> str:
    """`sambung ARGS -c <the daemon's YAML>`, its standard output."""
    done = subprocess.run(
        [sys.executable, "-m", "sambung", *args, "-c", str(daemon.config_path)],
        capture_output=True,
        text=True,
        check=True,
        env=daemon.env,
    )
    return done.stdout


@contextmanager
def daemon_and_receiver(
    sambung_daemon: Any, store_url: str, receiver: Receiver, **sink: Any
) -> Iterator[tuple[DaemonProcess, HttpClient, ReceiverThread]]:
    """A daemon on `store_url` delivering its `backend` sink to `receiver`, with its admin API."""
    port = free_port()
    with ReceiverThread(receiver) as running:
        document = config(running.url, port, **sink)
        yield sambung_daemon({**document, "store": {"url": store_url}}), admin(port), running


def test_a_row_that_failed_twice_then_succeeded_shows_three_attempts_with_their_answers(
    sambung_daemon: Any, sambung_store_url: str
) -> None:
    receiver = Receiver(SINK_SECRET)
    # The receiver's first answer quotes the sink's secret: it must never be stored as such.
    receiver.answer_with(500, body=f"upstream down (key {SINK_SECRET})")
    receiver.answer_with(500, body="still down")
    receiver.answer_with(200, body='{"received": true}')
    schedule = [0, 0.2, 0.2, 0.2]
    with daemon_and_receiver(
        sambung_daemon, sambung_store_url, receiver, retry_schedule=schedule
    ) as (daemon, api, running):
        assert send(daemon, "TRX-1") == 200

        def delivered() -> list[dict[str, Any]]:
            _, body = api.get("/api/v1/deliveries?sink=backend&status=delivered", AUTH)
            return list(body["deliveries"])

        wait_until(lambda: len(delivered()) == 1, "the third attempt to be delivered")
        assert running.count == 3
        [row] = delivered()
        assert row["external_id"] == "TRX-1" and row["attempts"] == 3
        assert row["latest"]["outcome"] == "delivered" and row["latest"]["http_status"] == 200

        status, shown = api.get(f"/api/v1/deliveries/{row['id']}", AUTH)
        assert status == 200
        attempts = shown["attempts"]
        assert [a["attempt"] for a in attempts] == [1, 2, 3]
        assert [a["outcome"] for a in attempts] == ["retry", "retry", "delivered"]
        assert [a["http_status"] for a in attempts] == [500, 500, 200]
        assert [a["response"] for a in attempts] == [
            f"upstream down (key {MASK})",
            "still down",
            '{"received": true}',
        ]
        assert all(a["latency_ms"] is not None for a in attempts)
        assert attempts[0]["next_attempt_at"] is not None and attempts[2]["next_attempt_at"] is None

        # The CLI shows the same, from the store; the secret nowhere.
        listed = cli(daemon, "deliveries", "list", "--sink", "backend", "--json")
        assert [json.loads(line)["id"] for line in listed.splitlines()] == [row["id"]]
        text = cli(daemon, "deliveries", "show", str(row["id"]))
        assert f"outbox row #{row['id']} to sink backend: delivered, 3 attempt(s)" in text
        lines = text.splitlines()
        header = next(i for i, line in enumerate(lines) if line.startswith("#  STARTED"))
        outcomes = [line.split()[3] for line in lines[header + 1 :]]
        assert outcomes == ["retry", "retry", "delivered"]
        assert "HTTP 500: upstream down (key ***)" in text
        for output in (text, listed, json.dumps(shown)):
            assert SINK_SECRET not in output

        # Every attempt sent the same webhook-id: one record, three tries.
        assert len(running.seen_ids()) == 1
