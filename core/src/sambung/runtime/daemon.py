"""The daemon: builds connectors from the config, runs the listeners, drains on SIGTERM."""

from __future__ import annotations

import asyncio
import errno
import gc
import signal
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from typing import Any

import structlog
from aiohttp import web

from sambung import __version__
from sambung.auth.credentials import CredentialService
from sambung.auth.oauth import SINK_OUTLET
from sambung.clock import Clock, SystemClock
from sambung.config import AdminListener, LoadedConfig, PublicListener
from sambung.connectors import ConnectorContext, ConnectorSettings, Mode, WebhookConnector
from sambung.delivery.outbox import Dispatcher
from sambung.errors import ListenerUnavailable
from sambung.intake.filedrop import start_file_drop
from sambung.intake.webhooks import (
    INGEST_KEY,
    MAX_BODY_KEY,
    TARGETS_KEY,
    WebhookIngest,
    WebhookTargets,
    add_webhook_routes,
)
from sambung.plugins import Registry
from sambung.store import ConnectionStatus, DeadLetter, Store, display_url, open_store

from .admin import admin_app
from .listeners import app_runner
from .replicas import Replica, default_replica_id
from .supervision import Loops
from .systemd import Notifier

# How long in-flight requests may take to finish after SIGTERM before they are cut off. A
# commit takes milliseconds; but aiohttp also waits this long for a request whose connection it
# closed while the body was still arriving (seen under load), so the grace is kept short. A cut
# request was never acknowledged: the vendor retries it and deduplication absorbs the repeat.
SHUTDOWN_GRACE_SECONDS = 3.0

log = structlog.get_logger(__name__)


def _unavailable(where: str, host: str, port: int, err: OSError) -> ListenerUnavailable:
    """Why a listener cannot start, under the setting to change."""
    if err.errno == errno.EADDRINUSE:
        return ListenerUnavailable(
            f"{where}.port",
            f"port {port} on {host} is in use by another program (another sambung?); "
            "stop it, or choose another port",
        )
    if err.errno == errno.EACCES:
        return ListenerUnavailable(
            f"{where}.port", f"not allowed to listen on port {port} on {host} (below 1024?)"
        )
    if err.errno == errno.EADDRNOTAVAIL:
        return ListenerUnavailable(f"{where}.host", f"{host} is not an address of this machine")
    reason = err.strerror or str(err)
    return ListenerUnavailable(where, f"cannot listen on {host}:{port}: {reason}")


class Daemon:
    """One running sambung: a store, the connectors of every outlet, and the listeners."""

    def __init__(self, loaded: LoadedConfig, registry: Registry, *, clock: Clock | None = None):
        self.loaded = loaded
        self.registry = registry
        self.clock = clock or SystemClock()
        replicas = loaded.config.replicas
        replica_id = replicas.id or default_replica_id()
        self.store: Store = open_store(
            loaded.config.store.url,
            base_dir=loaded.base_dir,
            owner=replica_id,
            clock=self.clock,
            writer_process=loaded.config.store.writer_process,
        )
        self.replica = Replica(
            self.store, replica_id, ttl=replicas.lease_ttl.total_seconds(), clock=self.clock
        )
        self._runners: list[web.AppRunner] = []
        readiness = loaded.config.server.readiness
        self.loops = Loops(
            stall_intervals=readiness.stall_intervals,
            stall_min=readiness.stall_min.total_seconds(),
        )
        self._background: set[asyncio.Task[Any]] = set()
        self.webhook_targets = self._webhook_targets()
        self.local_url: str | None = None
        self.credentials = _credentials(loaded, self.store, self.clock)
        self.dispatcher = Dispatcher(
            self.store,
            loaded,
            registry,
            clock=self.clock,
            notify=self._notify_dead_letter,
            notify_reauth=self._call_reauth_hooks,
            credentials=self.credentials,
            # Claims last as long as a loop's lease, renewed as often: a replica that stops
            # renewing (dead, frozen, cut off) has its rows taken over within about a ttl.
            lease_seconds=self.replica.ttl,
        )
        from sambung.intake.backfill import BackfillService
        from sambung.intake.cursors import CursorService

        # Operator requests arrive on the admin API; the connection's poll loop acts on them.
        self.backfills = BackfillService(
            self.store, lambda: self.loaded, clock=self.clock, wake=self._wake_poll
        )
        self.cursors = CursorService(
            self.store, lambda: self.loaded, clock=self.clock, wake=self._wake_poll
        )
        from sambung.intake.controls import ControlService

        self.controls = ControlService(
            self.store, lambda: self.loaded, clock=self.clock, wake=self._wake_poll
        )

    def webhook_connectors(self) -> list[WebhookConnector[ConnectorSettings]]:
        """The connector instance of every outlet that receives webhooks."""
        return list(self.webhook_targets.by_outlet.values())

    def _webhook_targets(self) -> WebhookTargets:
        targets: dict[tuple[str, str], WebhookConnector[ConnectorSettings]] = {}
        for connection in self.loaded.connections:
            if not connection.settings.enabled or Mode.WEBHOOK not in connection.settings.mode:
                continue
            bound = log.bind(outlet=connection.outlet.id, connector=connection.name)
            context = ConnectorContext(
                outlet=connection.outlet, settings=connection.settings, log=bound, clock=self.clock
            )
            instance = connection.connector(context)
            assert isinstance(instance, WebhookConnector)
            targets[(connection.name, connection.outlet.id)] = instance
        return WebhookTargets(targets)

    def public_app(self) -> web.Application:
        """The app vendors talk to: webhooks and `/healthz`."""
        max_body = self.loaded.config.server.public.max_body_bytes
        # aiohttp enforces the limit while reading; one extra byte lets our handler answer 413
        # itself, as JSON, rather than aiohttp's plain-text page.
        app = web.Application(client_max_size=max_body + 1)
        app[MAX_BODY_KEY] = max_body
        app[TARGETS_KEY] = self.webhook_targets
        app[INGEST_KEY] = WebhookIngest(
            self.store, self.loaded.sinks_for, self.clock, self._notify_dead_letter
        )
        add_webhook_routes(app)
        from sambung.auth.connect import OAuthCallback, add_callback_route

        add_callback_route(
            app, OAuthCallback(self.credentials, self.loaded, self.clock, self._resume_polling)
        )
        app.router.add_get("/healthz", self._healthz)
        return app

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "version": __version__})

    def _notify_dead_letter(self, entry: DeadLetter) -> None:
        """Run the `sambung_dead_letter` hooks in a thread: a slow e-mail never blocks ingest."""
        self._spawn(self._call_dead_letter_hooks(entry))

    async def _call_dead_letter_hooks(self, entry: DeadLetter) -> None:
        try:
            await asyncio.to_thread(self.registry.hook.sambung_dead_letter, entry=entry)
        except Exception as err:
            log.error(
                "hook.dead_letter_failed",
                error=f"{type(err).__name__}: {err}",
                dead_letter_id=entry.id,
            )

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def start(self) -> None:
        """Open the store, start the listeners; subsystems start their loops on `self.loops`."""
        await self.store.open()
        try:
            await self._start_listeners()
        except BaseException:
            await self.stop()  # the store's writer thread would keep the process alive
            raise

    async def _start_listeners(self) -> None:
        tune_gc()
        await self.replica.start(self.loops.start)
        public = self.loaded.config.server.public
        port = await self._listen(self.public_app(), public, "server.public")
        # How this machine itself reaches the listener (the simulator, health checks).
        host = "127.0.0.1" if public.host in ("0.0.0.0", "::", "") else public.host
        self.local_url = f"http://{host}:{port}"
        start_file_drop(self.loaded, self.store, self.clock, self.loops.start, self.replica.own)
        admin = self.loaded.config.server.admin
        admin_address = None
        if admin is not None:
            admin_port = await self._listen(
                admin_app(self, admin.token.get_secret_value()), admin, "server.admin"
            )
            admin_address = f"{admin.host}:{admin_port}"
        await self.dispatcher.open()
        self.dispatcher.start(self.loops.start)
        self._start_summaries()
        self._start_alerts()
        self._start_reconciliation()
        log.info(
            "daemon.started",
            version=__version__,
            public=f"{public.host}:{port}",
            admin=admin_address,
            outlets=[o.id for o in self.loaded.config.outlets],
            connections=[f"{c.outlet.id}/{c.name}" for c in self.loaded.connections],
            store=display_url(self.loaded.config.store.url),
            replica=self.replica.id,
        )
        await self._warn_needs_reauth()
        await self._start_polling()

    async def _warn_needs_reauth(self) -> None:
        """One warning per configured connection that stopped in `needs_reauth` and was not
        connected again since, naming the command that fixes it."""
        configured = {(c.outlet.id, c.name) for c in self.loaded.connections}
        updated = {
            (c.outlet, c.connector): c.updated_at for c in await self.store.list_credentials()
        }
        for state in await self.store.list_connection_states():
            key = (state.outlet, state.connector)
            if state.state is not ConnectionStatus.NEEDS_REAUTH or key not in configured:
                continue
            since = updated.get(key)
            if (
                since is not None
                and state.last_error_at is not None
                and since > state.last_error_at
            ):
                continue
            log.warning(
                "connection.needs_reauth",
                outlet=state.outlet,
                connector=state.connector,
                error=state.last_error,
                fix=f"sambung connect -c {self.loaded.path} {state.outlet} {state.connector}",
            )

    def _start_summaries(self) -> None:
        """Start the daily-summary loop when some sink receives summaries."""
        from sambung.delivery.summaries import SummaryService

        self.summaries = SummaryService(self.store, self.loaded, self.clock)
        if self.summaries.outlets():
            # One replica sums up at a time: two reading the same day at different moments
            # could otherwise store an older summary after a newer one.
            self.loops.start(
                "summaries",
                partial(self.replica.own, "summaries", self.summaries.run_forever),
                interval=self.summaries.settings.every_seconds,
            )

    def _start_alerts(self) -> None:
        """Start the alert loop; one replica checks at a time (the store still decides each
        transition once, should two ever overlap while the lease passes on)."""
        from sambung.alerts.service import AlertService

        self.alerts = AlertService(
            self.store, self.loaded, self.registry, self.clock, sinks=self.dispatcher.status
        )
        self.alerts.open()
        self.loops.start(
            "alerts",
            partial(self.replica.own, "alerts", self.alerts.run_forever),
            interval=self.alerts.interval,
        )

    def _start_reconciliation(self) -> None:
        """Start the daily-reconciliation loop when an outlet has a POS and a payment gateway."""
        from sambung.delivery.reconciliation import ReconciliationService

        self.reconciliation = ReconciliationService(self.store, self.loaded, self.clock)
        if self.reconciliation.outlets():
            # One replica at a time, as for summaries (an older result after a newer one).
            self.loops.start(
                "reconciliation",
                partial(self.replica.own, "reconciliation", self.reconciliation.run_forever),
                interval=self.reconciliation.settings.every_seconds,
            )

    async def _listen(
        self, app: web.Application, listener: PublicListener | AdminListener, where: str
    ) -> int:
        """Serve `app` on the listener's host:port; returns the port (the OS picks one for 0)."""
        host, port = listener.host, listener.port
        runner = app_runner(app, listener, shutdown_timeout=SHUTDOWN_GRACE_SECONDS)
        await runner.setup()
        self._runners.append(runner)
        try:
            await web.TCPSite(runner, host, port, backlog=1024).start()
        except OSError as err:
            raise _unavailable(where, host, port, err) from err
        return int(runner.addresses[0][1]) if runner.addresses else port

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish their commits, stop the loops, then
        close the store (which commits every write already queued)."""
        log.info("daemon.stopping")
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()
        await self.loops.stop()
        await self.dispatcher.close()
        if (alerts := getattr(self, "alerts", None)) is not None:
            await alerts.close()
        await self._stop_polling()
        if self._background:
            await asyncio.wait(self._background, timeout=SHUTDOWN_GRACE_SECONDS)
        await self.store.close()
        log.info("daemon.stopped")

    # -- poll mode -------------------------------------------------------------------------

    async def _start_polling(self) -> None:
        """Start one supervised loop per polled connection, all on one shared HTTP session."""
        from sambung.intake.polling import PollService

        self.polling = PollService(
            self.loaded.connections,
            self.store,
            self.loaded.sinks_for,
            clock=self.clock,
            notify_reauth=self._notify_needs_reauth,
            credentials=self.credentials,
            backfills=self.backfills,
        )
        if not self.polling.connections:
            return
        import aiohttp

        # One session for every vendor call of the daemon; plugins never make their own.
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=200, ttl_dns_cache=300),
            headers={"User-Agent": f"sambung/{__version__}"},
        )
        for loop in self.polling.build(session):
            # Only the replica holding the loop's lease polls it (every replica on SQLite).
            self.loops.start(
                f"poll:{loop.outlet}:{loop.name}",
                partial(self.replica.own, f"poll:{loop.outlet}/{loop.name}", loop.run_forever),
                interval=loop.settings.interval.total_seconds(),
                outlet=loop.outlet,
                connector=loop.name,
            )

    def _resume_polling(self, outlet: str, connector: str) -> None:
        """New tokens arrived for a connection (OAuth callback): poll it now; for a sink
        (outlet "*"), deliver its waiting rows now."""
        if outlet == SINK_OUTLET:
            self.dispatcher.reconnected(connector)
            return
        polling = getattr(self, "polling", None)
        loop = polling.loops.get((outlet, connector)) if polling is not None else None
        if loop is not None:
            loop.credentials_renewed()

    def _wake_poll(self, outlet: str, connector: str) -> None:
        """Run a connection's loop now (a backfill was asked for, its cursor was set); on
        another replica's loop, its next cycle picks the change up."""
        polling = getattr(self, "polling", None)
        loop = polling.loops.get((outlet, connector)) if polling is not None else None
        if loop is not None:
            loop.wake()

    async def _stop_polling(self) -> None:
        polling = getattr(self, "polling", None)
        if polling is not None and polling.session is not None:
            await polling.session.close()

    def reload(self) -> None:
        """SIGHUP: read the YAML again and hand polled connections their new settings (new
        credentials end a needs_reauth at once). A broken file is logged and ignored."""
        from sambung.config import load_config
        from sambung.errors import ConfigError
        from sambung.redaction import secrets

        try:
            loaded = load_config(self.loaded.path, self.registry)
        except ConfigError as err:
            log.error("config.reload_failed", problems=[str(p) for p in err.problems])
            return
        # The old secrets too: errors raised before the reload may still quote them.
        secrets.configure((*self.loaded.secrets, *loaded.secrets))
        polling = getattr(self, "polling", None)
        changed = polling.reload(loaded.connections) if polling is not None else []
        log.info("config.reloaded", path=str(loaded.path), poll_connections_changed=changed)

    def _notify_needs_reauth(self, state: Any) -> None:
        """Run the `sambung_connection_needs_reauth` hooks in a thread."""
        self._call_reauth_hooks(state.outlet, state.connector, state.last_error or "")

    def _call_reauth_hooks(self, outlet: str, connector: str, error: str) -> None:
        """The same hooks for (outlet, connector), or for a sink: ("*", its name)."""

        async def call() -> None:
            try:
                await asyncio.to_thread(
                    self.registry.hook.sambung_connection_needs_reauth,
                    outlet=outlet,
                    connector=connector,
                    error=error,
                )
            except Exception as err:
                log.error("hook.needs_reauth_failed", error=f"{type(err).__name__}: {err}")

        self._spawn(call())


def _credentials(loaded: LoadedConfig, store: Store, clock: Clock) -> CredentialService:
    """The credential service, under the key from SAMBUNG_SECRET_KEY or the key file."""
    from sambung.auth.credentials import SecretBox, key_file_of, load_key

    box = SecretBox(load_key(key_file_of(loaded)))
    return CredentialService(store, box, clock=clock, config_path=loaded.path)


def tune_gc() -> None:
    """Keep the collector off the hot path: every webhook allocates hundreds of short-lived
    objects, and the default threshold (700) ran a collection every few requests (7 % of the
    event loop's time under load). What exists at start-up is frozen out of every collection."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


async def serve(
    daemon: Daemon, *, also: Callable[[Daemon], Coroutine[Any, Any, None]] | None = None
) -> None:
    """Run `daemon` until SIGTERM or SIGINT, then drain; `also` runs beside it (the simulator)."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    loop.add_signal_handler(signal.SIGHUP, _hangup, daemon)
    systemd = Notifier()
    await daemon.start()
    systemd.ready(_status_line(daemon))
    watchdog = asyncio.create_task(systemd.watchdog(), name="systemd-watchdog")
    companion = asyncio.create_task(also(daemon)) if also is not None else None
    try:
        await stopping.wait()
    finally:
        systemd.stopping()
        for task in (companion, watchdog):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await daemon.stop()


def _hangup(daemon: Daemon) -> None:
    """SIGHUP: reopen the log file (logrotate moved it), then reload the YAML."""
    from . import logfile

    logfile.reopen()
    daemon.reload()


def _status_line(daemon: Daemon) -> str:
    """What `systemctl status` shows once the daemon is up."""
    loaded = daemon.loaded
    return (
        f"listening on {daemon.local_url}; {len(loaded.config.outlets)} outlet(s),"
        f" {len(loaded.connections)} connection(s), store {display_url(loaded.config.store.url)}"
    )
