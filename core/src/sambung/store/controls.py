"""What the store keeps of an operator's hand on a connection and of its poll runs: a pause
(who, when, why; durable, so a restart and every replica honour it) and the recent runs.

The values and the protocol here; the SQL, shared by both backends, in `controls_sql`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from sambung.redaction import redact_optional

# How many runs of one connection are kept: the oldest beyond these go with each new one.
RUNS_KEPT = 200


@dataclass(frozen=True)
class ConnectionControl:
    """Whether an operator paused a connection, and the last change: who, when, why."""

    outlet: str
    connector: str
    paused: bool
    reason: str | None
    actor: str
    changed_at: datetime


class RunOutcome(StrEnum):
    """How a poll run (or a backfill slice) ended."""

    OK = "ok"
    FAILED = "failed"
    NEEDS_REAUTH = "needs_reauth"
    LEASE_LOST = "lease_lost"


@dataclass(frozen=True)
class PollRun:
    """One poll run (`kind` live) or backfill slice (`kind` backfill) of a connection."""

    outlet: str
    connector: str
    kind: str
    started_at: datetime
    finished_at: datetime
    outcome: RunOutcome
    pages: int = 0
    records_fetched: int = 0
    records_new: int = 0
    records_changed: int = 0
    error: str | None = None
    cursor_before: str | None = None
    cursor_after: str | None = None
    # Given by the store when read back; None on a run about to be recorded.
    id: int | None = None

    def __post_init__(self) -> None:
        # The error often quotes a vendor's answer: masked before it is stored or shown.
        object.__setattr__(self, "error", redact_optional(self.error))

    @property
    def records_unchanged(self) -> int:
        """Records fetched again that were stored as they were (the overlap, mostly)."""
        return max(0, self.records_fetched - self.records_new - self.records_changed)


class ControlStore(Protocol):
    """Operator pauses of connections and the record of their poll runs."""

    async def set_paused(
        self, outlet: str, connector: str, paused: bool, *, actor: str, reason: str | None
    ) -> ConnectionControl:
        """Pause (or resume) one connection, recording who and why."""
        ...

    async def control_changes(
        self, outlet: str, connector: str, limit: int = 20
    ) -> list[ConnectionControl]:
        """One connection's pauses and resumes (each as the state it set), newest first."""
        ...

    async def get_control(self, outlet: str, connector: str) -> ConnectionControl | None:
        """One connection's pause state, if an operator ever paused or resumed it."""
        ...

    async def list_controls(self) -> list[ConnectionControl]:
        """Every connection an operator ever paused or resumed, by outlet and connector."""
        ...

    async def record_run(self, run: PollRun, *, keep: int = RUNS_KEPT) -> None:
        """Record one finished run, pruning that connection's beyond the newest `keep`."""
        ...

    async def recent_runs(self, outlet: str, connector: str, limit: int = 20) -> list[PollRun]:
        """One connection's runs, newest first."""
        ...
