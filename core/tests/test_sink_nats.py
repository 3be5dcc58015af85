"""The `nats` sink against real NATS JetStream: the shared server on 127.0.0.1:4222 (a stream of
its own per test, deleted afterwards), and a private `nats-server` this test starts and stops to
show deliveries backing off while NATS is down and completing once it is back."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import shutil
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats
import pytest
import structlog
import yaml
from nats.js import JetStreamContext
from pydantic import ValidationError
from sambung.config import load_config
from sambung.delivery.outbox import Dispatcher
from sambung.delivery.sinks import Delivery, SinkContext
from sambung.delivery.sinks.nats import NatsSink, stream_subjects
from sambung.errors import ConfigError, RetriableError
from sambung.plugins import load_plugins
from sambung.store import IngestRequest, Store
from sambung.testing.daemon import free_port
from sambung.testing.manual_clock import ManualClock

from .conftest import sale

SHARED = "nats://127.0.0.1:4222"
NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="session")
def shared_nats() -> str:
    """The machine's NATS with JetStream on 4222, started as the brief says if it is down."""
    if not _listening(4222):
        subprocess.run(
            [
                "start-stop-daemon",
                "--start",
                "--oknodo",
                "--background",
                "--exec",
                NATS_SERVER,
                "--",
                *("-a", "127.0.0.1", "-p", "4222", "-js", "-sd", "/var/lib/nats-server"),
            ],
            check=False,
        )
        for _ in range(100):
            if _listening(4222):
                break
            subprocess.run(["sleep", "0.1"], check=True)
    assert _listening(4222), "NATS JetStream is not running on 127.0.0.1:4222"
    return SHARED


@pytest.fixture
async def js(shared_nats: str) -> AsyncIterator[JetStreamContext]:
    """A JetStream context of our own, to look at what the sink published."""
    client = await nats.connect(shared_nats)
    yield client.jetstream()
    await client.close()


@pytest.fixture
async def names(js: JetStreamContext) -> AsyncIterator[dict[str, str]]:
    """A unique stream name and subject prefix; the stream is deleted afterwards."""
    tag = uuid.uuid4().hex[:12]
    found = {"stream": f"SAMBUNG_TEST_{tag}", "prefix": f"sambungtest{tag}"}
    yield found
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await js.delete_stream(found["stream"])


def make_sink(settings: dict[str, Any], name: str = "bus") -> NatsSink:
    context = SinkContext(
        name=name,
        settings=NatsSink.Settings.model_validate(settings),
        clock=ManualClock(),
        session=None,  # type: ignore[arg-type]  # this sink speaks NATS, not HTTP
        base_dir=Path("."),
        log=structlog.get_logger("test").bind(sink=name),
    )
    return NatsSink(context)


@pytest.fixture
async def sink(names: dict[str, str], shared_nats: str) -> AsyncIterator[Callable[..., Any]]:
    opened: list[NatsSink] = []

    async def build(**changes: Any) -> NatsSink:
        settings = {
            "servers": shared_nats,
            "subject": names["prefix"] + ".{outlet}.{kind}",
            "stream": names["stream"],
            "create_stream": True,
            **changes,
        }
        built = make_sink(settings)
        await built.open()
        opened.append(built)
        return built

    yield build
    for built in opened:
        await built.close()


def delivery(n: int, *, outlet: str = "kemang", attempt: int = 1) -> Delivery:
    return Delivery(
        id=f"msg_{n:04d}_{outlet}",
        outbox_id=n,
        sink="bus",
        outlet=outlet,
        source_system="pawoon",
        kind="transaction",
        record_id=n,
        revision=1,
        payload=f'{{"external_id":"TRX-{n}","total":"27500"}}',
        attempt=attempt,
        created_at=datetime(2026, 11, 26, 13, 15, tzinfo=UTC),
    )


async def messages(js: JetStreamContext, stream: str) -> int:
    return int((await js.stream_info(stream)).state.messages)


# -- the shared server ---------------------------------------------------------------------------


async def test_delivers_to_a_real_stream_with_the_id_as_nats_msg_id(
    sink: Any, js: JetStreamContext, names: dict[str, str]
) -> None:
    bus = await sink()
    items = [delivery(1), delivery(2, outlet="panakkukang"), delivery(3)]

    assert await bus.deliver(items) == [None, None, None]

    assert await messages(js, names["stream"]) == 3
    second = await js.get_msg(names["stream"], 2)
    assert second.subject == f"{names['prefix']}.panakkukang.transaction"
    assert second.headers is not None and second.headers["Nats-Msg-Id"] == items[1].id
    assert second.data == items[1].body()


async def test_a_redelivery_with_the_same_id_is_dropped_by_jetstream(
    sink: Any, js: JetStreamContext, names: dict[str, str]
) -> None:
    bus = await sink()
    assert await bus.deliver([delivery(1)]) == [None]
    # The same delivery again (a lost ack, retried), then from a fresh process (a crash).
    assert await bus.deliver([delivery(1, attempt=2)]) == [None]
    again = await sink()
    assert await again.deliver([delivery(1, attempt=3), delivery(2)]) == [None, None]

    assert await messages(js, names["stream"]) == 2


async def test_the_created_stream_keeps_ids_for_the_duplicate_window(
    sink: Any, js: JetStreamContext, names: dict[str, str]
) -> None:
    await sink(duplicate_window="6h")

    info = await js.stream_info(names["stream"])
    assert info.config.subjects == [f"{names['prefix']}.>"]
    assert info.config.duplicate_window == 6 * 3600


async def test_a_missing_stream_is_a_clear_error(names: dict[str, str], shared_nats: str) -> None:
    bus = make_sink(
        {
            "servers": shared_nats,
            "subject": names["prefix"] + ".{outlet}",
            "stream": names["stream"],
        }
    )
    with pytest.raises(
        ConfigError, match=rf"sinks\.bus\.stream: .*{names['stream']}.*create_stream"
    ):
        await bus.open()
    await bus.close()


async def test_a_subject_no_stream_captures_is_retried_with_the_reason(
    names: dict[str, str], shared_nats: str
) -> None:
    bus = make_sink({"servers": shared_nats, "subject": names["prefix"] + ".{outlet}"})
    await bus.open()
    try:
        [result] = await bus.deliver([delivery(1)])
    finally:
        await bus.close()
    assert isinstance(result, RetriableError)
    assert "no JetStream stream captures subject" in str(result)


async def test_in_flight_publishes_are_bounded(
    sink: Any, js: JetStreamContext, names: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = await sink(max_in_flight=3)
    assert bus._js is not None
    publish = bus._js.publish
    in_flight = most = 0

    async def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            await asyncio.sleep(0.01)
            return await publish(*args, **kwargs)
        finally:
            in_flight -= 1

    monkeypatch.setattr(bus._js, "publish", counting)
    assert await bus.deliver([delivery(n) for n in range(20)]) == [None] * 20
    assert most == 3
    assert await messages(js, names["stream"]) == 20


def test_settings_say_what_is_wrong() -> None:
    with pytest.raises(ValidationError, match="create_stream needs"):
        NatsSink.Settings.model_validate({"create_stream": True})
    with pytest.raises(ValidationError, match="unknown field"):
        NatsSink.Settings.model_validate({"subject": "sambung.{store}"})
    with pytest.raises(ValidationError, match="set `subjects`"):
        NatsSink.Settings.model_validate(
            {"subject": "{outlet}.sales", "stream": "S", "create_stream": True}
        )
    assert stream_subjects("sambung.{outlet}.{kind}") == ("sambung.>",)
    assert NatsSink.Settings.model_validate({"servers": "nats://a:4222"}).servers == (
        "nats://a:4222",
    )


# -- a private server, stopped and started -------------------------------------------------------


class PrivateNats:
    """A `nats-server -js` on a free port with its own folder, which a test stops and starts."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.process = subprocess.Popen(
            [NATS_SERVER, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.folder)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(200):  # until JetStream answers, not just the port
            try:
                client = await nats.connect(self.url, allow_reconnect=False, connect_timeout=1)
            except Exception:
                await asyncio.sleep(0.05)
                continue
            try:
                await client.jetstream().account_info()
                return
            except Exception:
                await asyncio.sleep(0.05)
            finally:
                await client.close()
        raise AssertionError("the private nats-server did not come up")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def private_nats(tmp_path: Path) -> Iterator[PrivateNats]:
    server = PrivateNats(tmp_path / "nats")
    yield server
    server.stop()


async def test_nats_down_then_up_backs_off_and_then_delivers_everything(
    tmp_path: Path, store: Store, private_nats: PrivateNats
) -> None:
    document = {
        "outlets": [
            {
                "id": "kemang",
                "name": "Kemang",
                "connectors": {"pawoon": {"mode": "webhook", "webhook_secret": "s3cret"}},
            }
        ],
        "sinks": {
            "bus": {
                "type": "nats",
                "servers": [private_nats.url],
                "stream": "SALES",
                "create_stream": True,
                "connect_timeout_seconds": 1,
            }
        },
    }
    path = tmp_path / "sambung.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    registry = load_plugins(frozenset({"pawoon"}))
    loaded = load_config(path, registry)
    clock = ManualClock(datetime.now(UTC))
    dispatcher = Dispatcher(store, loaded, registry, clock=clock, rng=random.Random(3), jitter=0.0)

    async def ingest(*ids: str) -> None:
        records = [sale(external_id) for external_id in ids]
        routes = [loaded.sinks_for(r.outlet, r.kind) for r in records]
        await store.ingest(IngestRequest(records=records, routes=routes))

    async def statuses() -> list[str]:
        return sorted(row.status for row in await store.list_outbox())

    await dispatcher.open()  # NATS is not running: the sink starts anyway
    try:
        await ingest(*(f"TRX-{n}" for n in range(10)))
        clock.advance(1)
        assert await dispatcher.drain_once("bus") == 10
        assert await statuses() == ["pending"] * 10
        assert {row.attempts for row in await store.list_outbox()} == {1}

        await private_nats.start()
        assert await dispatcher.drain_once("bus") == 0  # backing off: nothing due yet
        clock.advance(6)  # the schedule's second attempt is 5 s after the first
        assert await dispatcher.drain_once("bus") == 10
        assert await statuses() == ["delivered"] * 10

        # Down again after a connection was made: the client must not buffer and pretend.
        private_nats.stop()
        await ingest("TRX-10", "TRX-11")
        clock.advance(1)
        assert await dispatcher.drain_once("bus") == 2
        assert (await statuses()).count("pending") == 2

        await private_nats.start()  # same store folder: the stream and its messages are kept
        clock.advance(6)
        assert await dispatcher.drain_once("bus") == 2
        assert await statuses() == ["delivered"] * 12

        client = await nats.connect(private_nats.url)
        try:
            assert await messages(client.jetstream(), "SALES") == 12
        finally:
            await client.close()
    finally:
        await dispatcher.close()


def test_the_commented_example_in_config_example_validates() -> None:
    text = (Path(__file__).parents[2] / "config.example.yaml").read_text(encoding="utf-8")
    lines = text[text.index("  # bus:") :].splitlines()
    # The commented block runs until the first line that is not a comment.
    block = [line[4:] for line in itertools.takewhile(lambda line: line.startswith("  #"), lines)]
    document = yaml.safe_load("\n".join(block))
    own = {k: v for k, v in document["bus"].items() if k not in ("type", "kinds")}
    assert document["bus"]["type"] == NatsSink.name
    assert NatsSink.Settings.model_validate(own).stream == "SAMBUNG"
