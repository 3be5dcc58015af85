"""The alert loop: every `alerts.check_interval` it runs the rules, lets the store decide the
transitions, and sends each due notice on its channel; a failed send is retried, never lost."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import structlog

from sambung import __version__
from sambung.clock import Clock
from sambung.config import LoadedConfig
from sambung.plugins import Registry
from sambung.redaction import secrets
from sambung.runtime import supervision
from sambung.store import AlertNotice, AlertTransition, Store

from .channel import AlertMessage, ChannelContext, ChannelSettings, NotifierChannel
from .rules import RuleContext, evaluate

log = structlog.get_logger(__name__)

# A notice whose channel failed is sent again after 5 s, 10 s, 20 s ... and at most every 10 min.
RETRY_FIRST_SECONDS = 5.0
RETRY_MAX_SECONDS = 600.0
# A notice claimed by a replica that died while sending passes to another after this long.
CLAIM_SECONDS = 120.0
NOTICES_PER_CHECK = 100


def retry_delay(attempts: int) -> float:
    """Seconds before sending again a notice that failed `attempts` times (1 or more)."""
    return min(RETRY_MAX_SECONDS, RETRY_FIRST_SECONDS * float(1 << max(0, attempts - 1)))


def message_of(notice: AlertNotice) -> AlertMessage:
    """What channels send for one notice."""
    alert = notice.alert
    return AlertMessage(
        alert_id=alert.id,
        transition=notice.transition,
        rule=alert.rule,
        subject=alert.subject,
        message=alert.message,
        opened_at=alert.opened_at,
        recovered_at=alert.recovered_at,
        id=f"alert_{alert.id}_{notice.transition}",
    )


class AlertService:
    """Runs the rules and sends what the store decided, on the channels of `alerts.channels`."""

    def __init__(
        self,
        store: Store,
        loaded: LoadedConfig,
        registry: Registry,
        clock: Clock,
        *,
        sinks: Callable[[], Mapping[str, Mapping[str, Any]]] = dict,
    ) -> None:
        self.store = store
        self.loaded = loaded
        self.registry = registry
        self.clock = clock
        self.sinks = sinks
        self._first_seen: dict[str, datetime] = {}
        self._session: aiohttp.ClientSession | None = None
        self.channels: dict[str, NotifierChannel[ChannelSettings]] = {}

    @property
    def interval(self) -> float:
        """Seconds between checks."""
        return self.loaded.config.alerts.check_interval.total_seconds()

    def open(self) -> None:
        """Build one instance per configured channel."""
        self._session = aiohttp.ClientSession(headers={"User-Agent": f"sambung/{__version__}"})
        for name, config in self.loaded.config.alerts.channels.items():
            cls = self.registry.notifiers[config.type]
            context = ChannelContext(
                name=name,
                settings=self.loaded.channel_settings[name],
                clock=self.clock,
                session=self._session,
                log=log.bind(channel=name, type=config.type),
            )
            self.channels[name] = cls(context)

    async def close(self) -> None:
        """Close every channel and the HTTP session."""
        for channel in self.channels.values():
            try:
                await channel.close()
            except Exception as err:  # one channel's failure must not keep the others open
                log.warning("alerts.channel_close_failed", error=secrets.redact(str(err)))
        if self._session is not None:
            await self._session.close()

    async def run_forever(self) -> None:
        """Check and send every `check_interval` until cancelled (supervised)."""
        while True:
            await self.check_once()
            await self.send_due()
            supervision.cycle_done()
            await asyncio.sleep(self.interval)

    async def check_once(self) -> list[AlertTransition]:
        """Run every rule once; the transitions this check decided (each logged once)."""
        now = self.clock.now()
        context = RuleContext(
            self.store, self.loaded, now, sinks=self.sinks(), first_seen=self._first_seen
        )
        ran, found = await evaluate(context)
        transitions = await self.store.apply_alert_conditions(
            ran, found, channels=sorted(self.channels), now=now
        )
        log.debug("alerts.checked", rules=len(ran), found=len(found), transitions=len(transitions))
        for t in transitions:
            log.warning(
                f"alert.{t.transition}",
                rule=t.alert.rule,
                subject=t.alert.subject,
                message=t.alert.message,
                alert_id=t.alert.id,
            )
        return transitions

    async def send_due(self) -> int:
        """Send every due notice once; returns how many were sent."""
        now = self.clock.now()
        notices = await self.store.claim_alert_notices(
            now=now, limit=NOTICES_PER_CHECK, lease_seconds=CLAIM_SECONDS
        )
        sent = 0
        for notice in notices:
            sent += await self._send(notice)
        return sent

    async def _send(self, notice: AlertNotice) -> int:
        channel = self.channels.get(notice.channel)
        bound = log.bind(channel=notice.channel, alert_id=notice.alert.id, notice_id=notice.id)
        try:
            if channel is None:  # removed from the YAML: kept, in case it comes back
                raise LookupError(f"no channel {notice.channel!r} is configured now")
            await channel.send(message_of(notice))
        except Exception as err:
            delay = retry_delay(notice.attempts + 1)
            now = self.clock.now()
            error = secrets.redact(f"{type(err).__name__}: {err}")
            await self.store.settle_alert_notice(
                notice.id, now=now, error=error, retry_at=now + timedelta(seconds=delay)
            )
            bound.warning("alert.send_failed", error=error, retry_in_seconds=delay)
            return 0
        await self.store.settle_alert_notice(notice.id, now=self.clock.now())
        bound.info("alert.sent", transition=notice.transition, rule=notice.alert.rule)
        return 1
