"""What the store keeps for watching the daemon: the webhook gap report and alert episodes.

The values and protocols here; the SQL, shared by both backends, in `monitoring_sql`.
"""

from __future__ import annotations

import abc
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal, Protocol

from sambung.redaction import redact_optional

Transition = Literal["fired", "recovered"]


@dataclass(frozen=True)
class GapDay:
    """Of one connection's records of one business date: how many no webhook delivered."""

    outlet: str
    connector: str
    business_date: date
    poll_only: int
    total: int


@dataclass(frozen=True)
class AlertCondition:
    """One condition a rule finds now: which rule, about what (`subject`), and why."""

    rule: str
    subject: str
    message: str

    def __post_init__(self) -> None:
        # A message often quotes a vendor's error: masked before it is stored or sent.
        object.__setattr__(self, "message", redact_optional(self.message) or "")


@dataclass(frozen=True)
class Alert:
    """One episode of a condition: when it opened and, once it no longer holds, recovered."""

    id: int
    rule: str
    subject: str
    message: str
    opened_at: datetime
    recovered_at: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "message", redact_optional(self.message) or "")


@dataclass(frozen=True)
class AlertTransition:
    """An alert that this call opened (`fired`) or closed (`recovered`)."""

    alert: Alert
    transition: Transition


@dataclass(frozen=True)
class AlertNotice:
    """One transition of one alert to send on one channel, claimed by this store's owner."""

    id: int
    alert: Alert
    transition: Transition
    channel: str
    attempts: int


class GapStore(Protocol):
    """The webhook gap report: records of webhook-and-poll connections no webhook delivered."""

    @abc.abstractmethod
    async def webhook_gaps(
        self,
        connections: Collection[tuple[str, str]],
        *,
        outlet: str | None = None,
        since: date | None = None,
        stored_between: tuple[datetime, datetime] | None = None,
    ) -> list[GapDay]:
        """Per (outlet, connector) of `connections` and business date: records, and how many of
        them no webhook has delivered (`poll_only`), by outlet, connector and date.

        A record counts as poll-only while no webhook has delivered it, whenever it came: one a
        poll stored first and a webhook brought later is no loss. `stored_between` (start,
        end) counts only records first stored in that span (the alert rule's recent window);
        `since` only business dates from that day on. Days with no record are left out.
        """


class AlertStore(Protocol):
    """Alert episodes, decided atomically across replicas, and their notices to send."""

    @abc.abstractmethod
    async def apply_alert_conditions(
        self,
        rules: Collection[str],
        active: Collection[AlertCondition],
        *,
        channels: Sequence[str],
        now: datetime,
    ) -> list[AlertTransition]:
        """Open an alert for each active condition not open yet, and recover each open alert
        of `rules` whose condition is not in `active`; one notice per transition and channel.

        Atomic per alert: of several callers (replicas) deciding the same transition at once,
        exactly one gets it back, so each is sent once. Returns this call's transitions.
        """

    @abc.abstractmethod
    async def claim_alert_notices(
        self, *, now: datetime, limit: int, lease_seconds: float
    ) -> list[AlertNotice]:
        """Claim up to `limit` due unsent notices for `lease_seconds`, oldest first; a notice
        claimed by another owner whose claim has not expired is left alone."""

    @abc.abstractmethod
    async def settle_alert_notice(
        self,
        notice_id: int,
        *,
        now: datetime,
        error: str | None = None,
        retry_at: datetime | None = None,
    ) -> bool:
        """Mark a claimed notice sent (no `error`), or failed and due again at `retry_at`.
        False if this owner no longer holds its claim."""

    @abc.abstractmethod
    async def list_alerts(
        self, *, open_only: bool = False, since: datetime | None = None, limit: int = 100
    ) -> list[Alert]:
        """Open alerts, and (unless `open_only`) those recovered at or after `since`, newest
        first."""


class MonitoringStore(GapStore, AlertStore, Protocol):
    """What the alert loop uses of the store's monitoring part."""
