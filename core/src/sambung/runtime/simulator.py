"""The bundled simulator: posts signed example webhooks to the daemon's own public listener.

It is what `sambung run --simulate` (and `make run`) adds so a newcomer sees transactions flow
within seconds. It speaks real HTTP to the real listener, so everything after the network is
the production path. Every tenth post repeats the one before, to show duplicate handling.
"""

from __future__ import annotations

import asyncio
import random
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
import structlog

from sambung.config import WEBHOOK_PATH
from sambung.connectors import ConnectorSettings, WebhookConnector
from sambung.testing.receiver import Received, Receiver

from .simulator_payments import pay_sales, payment_simulators

if TYPE_CHECKING:
    from .daemon import Daemon

log = structlog.get_logger(__name__)


async def simulate(daemon: Daemon, *, interval: float = 1.0) -> None:
    """Post example webhooks for every connector that can make them, about every `interval` s."""
    receivers = await start_demo_receivers(daemon)
    try:
        await _simulate(daemon, interval)
    finally:
        for receiver in receivers:
            await receiver.stop()


async def _simulate(daemon: Daemon, interval: float) -> None:
    connectors = [c for c in daemon.webhook_connectors() if c.example_webhook(1) is not None]
    if not connectors:
        log.warning(
            "simulator.nothing_to_simulate",
            hint="no configured webhook connector offers example webhooks",
        )
        return
    # Where a gateway pays the outlet's sales (simulator_payments), no gateway there posts
    # payments of its own: they would name no sale.
    paying = {p.gateway.outlet.id for p in payment_simulators(daemon)}
    gateways = set(daemon.loaded.config.reconciliation.match)
    connectors = [c for c in connectors if c.outlet.id not in paying or c.name not in gateways]
    log.info("simulator.started", targets=[f"{c.outlet.id}/{c.name}" for c in connectors])
    async with aiohttp.ClientSession(base_url=daemon.local_url) as session:
        await asyncio.gather(*(_post_forever(session, c, interval) for c in connectors))


async def _post_forever(
    session: aiohttp.ClientSession, connector: WebhookConnector[ConnectorSettings], interval: float
) -> None:
    path = f"{WEBHOOK_PATH}/{connector.name}/{connector.outlet.id}"
    bound = log.bind(outlet=connector.outlet.id, connector=connector.name)
    # Spread the connectors out so their posts interleave rather than arrive in lockstep.
    await asyncio.sleep(random.uniform(0, interval))
    # Numbered from the clock, so a restarted demo makes new sales rather than new versions
    # of the last run's.
    posts, sequence, previous = 0, int(connector.context.clock.now().timestamp()), None
    while True:
        posts += 1
        if previous is not None and posts % 10 == 0:
            request, repeat = previous, True
        else:
            sequence += 1
            example = connector.example_webhook(sequence)
            assert example is not None  # only connectors that offer examples are simulated
            request, repeat = example, False
        try:
            async with session.post(path, data=request.body, headers=request.headers) as answer:
                body = await answer.json(content_type=None)
            # The daemon logs every accepted webhook; the simulator speaks up only when the
            # answer is not the one expected.
            if answer.status != 200 or body.get("duplicate") is not repeat:
                bound.warning(
                    "simulator.unexpected_answer", status=answer.status, repeat=repeat, answer=body
                )
        except (aiohttp.ClientError, ValueError) as err:
            bound.warning("simulator.post_failed", error=str(err))
        previous = request
        await asyncio.sleep(interval * random.uniform(0.5, 1.5))


async def start_demo_receivers(daemon: Daemon) -> list[Receiver]:
    """A verifying receiver for every `http` sink that points at this machine, so the demo shows
    records arriving at the other end, signatures checked."""
    started: list[Receiver] = []
    for name, sink in daemon.loaded.config.sinks.items():
        settings = daemon.loaded.sink_settings.get(name)
        if sink.type != "http" or settings is None:
            continue
        url = urlsplit(str(settings.url))  # type: ignore[attr-defined]
        if url.hostname not in ("127.0.0.1", "localhost") or url.path != "/webhooks":
            continue
        receiver = Receiver(settings.secret.get_secret_value(), record=False)  # type: ignore[attr-defined]
        bound = log.bind(sink=name)

        def show(received: Received, bound: Any = bound) -> None:
            event = received.payload
            bound.info(
                "demo_receiver.received",
                webhook_id=received.webhook_id,
                type=event.get("type"),
                external_id=event.get("data", {}).get("external_id"),
                verified=True,
            )

        receiver.on_receive = show
        try:
            await receiver.start(url.hostname or "127.0.0.1", url.port or 80)
        except OSError as err:
            bound.warning("demo_receiver.not_started", error=str(err), url=str(settings.url))  # type: ignore[attr-defined]
            continue
        bound.info("demo_receiver.started", url=receiver.url)
        started.append(receiver)
    return started


async def simulate_polling(daemon: Daemon, *, every: float = 5.0) -> None:
    """Serve the fake vendor of every polled connection whose `base_url` is on this machine,
    and ring up a sale there about every `every` seconds, so polling shows up in the log."""
    polling = getattr(daemon, "polling", None)
    fakes: dict[tuple[str, int], Any] = {}
    for loop in polling.loops.values() if polling is not None else ():
        base = loop.connector.settings.base_url
        parts = urlsplit(str(base)) if base is not None else None
        if parts is None or parts.hostname not in ("127.0.0.1", "localhost") or not parts.port:
            continue
        address = (parts.hostname, parts.port)
        if address in fakes:
            continue
        fake = loop.connector.example_vendor()
        if fake is not None:
            fakes[address] = fake
    if not fakes:
        return
    keep_oauth_state(daemon, fakes)
    async with AsyncExitStack() as stack:
        for (host, port), fake in fakes.items():
            await stack.enter_async_context(fake.serve(host, port))
        log.info("simulator.vendors", serving=[f"{h}:{p}" for h, p in fakes])
        await connect_demo_connections(daemon, fakes)
        sequence = 0
        while True:
            sequence += 1
            for fake in fakes.values():
                fake.sale(sequence, daemon.clock.now())
            await asyncio.sleep(every * random.uniform(0.5, 1.5))


async def simulate_sinks(daemon: Daemon) -> None:
    """Serve the fake destination of every sink whose vendor URL is on this machine (the demo's
    fake Accurate and Jurnal), so daily summaries are seen arriving somewhere."""
    fakes: dict[tuple[str, int], Any] = {}
    for name, runtime in daemon.dispatcher.sinks.items():
        url = runtime.sink.vendor_url()
        parts = urlsplit(url) if url else None
        if parts is None or parts.hostname not in ("127.0.0.1", "localhost") or not parts.port:
            continue
        fake = runtime.sink.example_vendor()
        if fake is not None and (parts.hostname, parts.port) not in fakes:
            fakes[(parts.hostname, parts.port)] = fake
            log.info("simulator.sink_vendor", sink=name, url=url)
    if not fakes:
        return
    keep_oauth_state(daemon, fakes)
    async with AsyncExitStack() as stack:
        for (host, port), fake in fakes.items():
            await stack.enter_async_context(fake.serve(host, port))
        await connect_demo_sinks(daemon, fakes)
        await asyncio.Event().wait()  # serve until the demo stops


def keep_oauth_state(daemon: Daemon, fakes: dict[tuple[str, int], Any]) -> None:
    """Keep every fake OAuth server's issued tokens in the data folder (beside the key file),
    so a restarted demo's stored tokens still refresh, as at a real vendor."""
    from sambung.auth.credentials import key_file_of
    from sambung.testing.oauth_server import FakeAuthorizationServer

    folder = key_file_of(daemon.loaded).parent
    for (_, port), fake in fakes.items():
        if isinstance(fake, FakeAuthorizationServer):
            fake.persist_to(folder / f"simulator-oauth-{port}.json")


async def connect_demo_connections(daemon: Daemon, fakes: dict[tuple[str, int], Any]) -> None:
    """Run the OAuth connect flow, as a merchant would, for every polled OAuth connection whose
    fake vendor is served here and that has no stored credentials yet."""
    from sambung.testing.oauth_server import FakeAuthorizationServer

    for loop in daemon.polling.loops.values():
        credentials = loop.connector.context.credentials
        parts = urlsplit(str(loop.connector.settings.base_url or ""))
        fake = fakes.get((parts.hostname or "", parts.port or 0))
        if not isinstance(fake, FakeAuthorizationServer) or credentials is None:
            continue
        if await credentials.updated_at() is not None:
            continue
        await _connect_at_fake(daemon, loop.outlet, loop.name)


async def connect_demo_sinks(daemon: Daemon, fakes: dict[tuple[str, int], Any]) -> None:
    """The same for every sink that connects through OAuth (accurate with `auth: oauth`) at a
    fake served here, not connected yet: its tokens are stored under the outlet "*"."""
    from sambung.auth.oauth import SINK_OUTLET
    from sambung.testing.oauth_server import FakeAuthorizationServer

    stored = {(info.outlet, info.connector) for info in await daemon.store.list_credentials()}
    for name, settings in daemon.loaded.sink_settings.items():
        spec = settings.oauth_endpoints()
        if spec is None or (SINK_OUTLET, name) in stored:
            continue
        parts = urlsplit(spec.authorize_url)
        if isinstance(fakes.get((parts.hostname or "", parts.port or 0)), FakeAuthorizationServer):
            await _connect_at_fake(daemon, SINK_OUTLET, name)


async def _connect_at_fake(daemon: Daemon, outlet: str, name: str) -> None:
    """Open the authorization link at the fake (it consents at once) and bring its redirect
    back to this daemon's own listener, whatever host name the redirect URI carries."""
    from sambung.auth.connect import start_connect
    from sambung.auth.oauth import CALLBACK_PATH

    link = await start_connect(daemon.credentials, daemon.loaded, outlet, name)
    async with aiohttp.ClientSession() as session:
        async with session.get(link.authorization_url, allow_redirects=False) as consent:
            back = urlsplit(consent.headers.get("Location", ""))
        callback = CALLBACK_PATH.format(connector=name)
        async with session.get(f"{daemon.local_url}{callback}?{back.query}") as answer:
            log.info(
                "simulator.connected_oauth", outlet=outlet, connector=name, status=answer.status
            )


async def simulate_all(daemon: Daemon) -> None:
    """Everything the demo shows, side by side: webhooks posted to the daemon, CSV exports
    dropped into file-drop inboxes, fake vendor APIs for its polls, fake accounting systems
    for its accounting sinks, and gateway payments for its sales."""
    from .simulator_files import drop_files

    await asyncio.gather(
        simulate(daemon),
        drop_files(daemon),
        simulate_polling(daemon),
        simulate_sinks(daemon),
        pay_sales(daemon),
    )
