"""The SQL of the gap report and of alerts, written once for both backends (see `sql.SqlStore`).

Alert transitions are decided by the database, not by the caller: an alert opens through an
insert that the partial unique index `alerts_open` lets succeed once per (rule, subject), and
recovers through an update conditional on it being open. Two replicas evaluating at once both
try; one statement touches the row, the other touches nothing, and only the first writes
notices. Notices are claimed the same way (a conditional update per row).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Collection, Coroutine, Sequence
from datetime import date, datetime, timedelta
from typing import Any, ClassVar, Protocol, TypeVar

from sambung.redaction import redact_optional

from .dialect import Dialect
from .monitoring import (
    Alert,
    AlertCondition,
    AlertNotice,
    AlertTransition,
    GapDay,
    MonitoringStore,
    Transition,
)

_T = TypeVar("_T")
Row = Sequence[Any]

_ALERT_COLUMNS = "a.id, a.rule, a.subject, a.message, a.opened_at, a.recovered_at"


class _Tx(Protocol):
    """The part of `sql.Tx` used here (a protocol of its own: `sql` imports this module)."""

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        """Every row of a query."""
        ...

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        """The first row of a query, if any."""
        ...

    async def execute(self, sql: str, *args: Any) -> int:
        """Run one statement; how many rows it touched."""
        ...


class MonitoringSql(MonitoringStore):
    """The gap report and alert episodes over a SQL store's reads and transactions."""

    dialect: ClassVar[Dialect]
    owner: str

    @abc.abstractmethod
    async def _fetch(self, sql: str, *args: Any) -> list[Row]:
        """The rows of one read."""

    @abc.abstractmethod
    async def _write(self, work: Callable[[_Tx], Coroutine[Any, Any, _T]]) -> _T:
        """Run `work` in one write transaction."""

    def _alert(self, r: Row) -> Alert:
        time = self.dialect.read_time
        return Alert(r[0], r[1], r[2], r[3], time(r[4]), self.dialect.read_optional_time(r[5]))

    # -- the gap report ----------------------------------------------------------------------

    async def webhook_gaps(
        self,
        connections: Collection[tuple[str, str]],
        *,
        outlet: str | None = None,
        since: date | None = None,
        stored_between: tuple[datetime, datetime] | None = None,
    ) -> list[GapDay]:
        """Per connection and business date: records, and how many no webhook delivered."""
        d = self.dialect
        stored, args = "", []
        if stored_between is not None:
            stored, args = " AND created_at >= ? AND created_at < ?", [*map(d.time, stored_between)]
        found: list[GapDay] = []
        for o, connector in sorted(set(connections)):
            if outlet is not None and o != outlet:
                continue
            day, day_args = (
                ("", []) if since is None else (" AND business_date >= ?", [d.day(since)])
            )
            rows = await self._fetch(
                "SELECT business_date, COUNT(*),"
                " SUM(CASE WHEN webhook_at IS NULL THEN 1 ELSE 0 END)"
                " FROM records WHERE outlet = ? AND source_system = ?"
                f" AND business_date IS NOT NULL{day}{stored} GROUP BY business_date"
                " ORDER BY business_date",
                o,
                connector,
                *day_args,
                *args,
            )
            found.extend(
                GapDay(o, connector, d.read_day(r[0]), int(r[2] or 0), int(r[1])) for r in rows
            )
        return found

    # -- alerts ------------------------------------------------------------------------------

    async def apply_alert_conditions(
        self,
        rules: Collection[str],
        active: Collection[AlertCondition],
        *,
        channels: Sequence[str],
        now: datetime,
    ) -> list[AlertTransition]:
        """Open the new conditions' alerts and recover the gone ones', each transition once."""
        d = self.dialect
        stamp = d.time(now)
        wanted = {(c.rule, c.subject): c for c in active if c.rule in rules}
        names = sorted(set(rules))
        if not names:
            return []
        open_sql = (
            f"SELECT {_ALERT_COLUMNS} FROM alerts AS a WHERE a.recovered_at IS NULL"
            f" AND a.rule IN ({', '.join('?' for _ in names)}) ORDER BY a.id"
        )
        # Nearly every check changes nothing: a read tells, and the write (on SQLite, a turn
        # of the one writer that webhooks wait on) is taken only when something may change.
        if {(r[1], r[2]) for r in await self._fetch(open_sql, *names)} == wanted.keys():
            return []

        async def apply(tx: _Tx) -> list[AlertTransition]:
            done: list[AlertTransition] = []
            open_rows = await tx.fetch(open_sql, *names)
            open_now = {(r[1], r[2]) for r in open_rows}
            for row in open_rows:
                if (row[1], row[2]) in wanted:
                    continue
                touched = await tx.execute(
                    "UPDATE alerts SET recovered_at = ? WHERE id = ? AND recovered_at IS NULL",
                    stamp,
                    row[0],
                )
                if touched == 1:  # another replica may have recovered it meanwhile
                    alert = self._alert(row)
                    done.append(AlertTransition(_recovered(alert, now), "recovered"))
            for key in sorted(wanted.keys() - open_now):
                condition = wanted[key]
                found = await tx.fetchrow(
                    "INSERT INTO alerts (rule, subject, message, opened_at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (rule, subject) WHERE recovered_at IS NULL DO NOTHING"
                    " RETURNING id",
                    condition.rule,
                    condition.subject,
                    condition.message,
                    stamp,
                )
                if found is not None:  # None: another replica opened it first
                    alert = Alert(
                        found[0], condition.rule, condition.subject, condition.message, now
                    )
                    done.append(AlertTransition(alert, "fired"))
            for transition in done:
                for channel in channels:
                    await tx.execute(
                        "INSERT INTO alert_notices (alert_id, transition, channel,"
                        " next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?)",
                        transition.alert.id,
                        transition.transition,
                        channel,
                        stamp,
                        stamp,
                    )
            return done

        return await self._write(apply)

    async def claim_alert_notices(
        self, *, now: datetime, limit: int, lease_seconds: float
    ) -> list[AlertNotice]:
        """Claim due unsent notices, oldest first, one conditional update each."""
        d = self.dialect
        stamp, until = d.time(now), d.time(now + timedelta(seconds=lease_seconds))
        # A read first, as in `apply_alert_conditions`: most checks find nothing due.
        if not await self._fetch(
            "SELECT 1 FROM alert_notices WHERE status = 'pending' AND next_attempt_at <= ? LIMIT 1",
            stamp,
        ):
            return []

        async def claim(tx: _Tx) -> list[AlertNotice]:
            due = await tx.fetch(
                f"SELECT n.id, n.transition, n.channel, n.attempts, {_ALERT_COLUMNS}"
                " FROM alert_notices AS n JOIN alerts AS a ON a.id = n.alert_id"
                " WHERE n.status = 'pending' AND n.next_attempt_at <= ?"
                " AND (n.claimed_until IS NULL OR n.claimed_until <= ?) ORDER BY n.id LIMIT ?",
                stamp,
                stamp,
                limit,
            )
            claimed = []
            for r in due:
                touched = await tx.execute(
                    "UPDATE alert_notices SET claimed_by = ?, claimed_until = ? WHERE id = ?"
                    " AND status = 'pending' AND (claimed_until IS NULL OR claimed_until <= ?)",
                    self.owner,
                    until,
                    r[0],
                    stamp,
                )
                if touched == 1:  # 0: another replica claimed it meanwhile
                    transition: Transition = "fired" if r[1] == "fired" else "recovered"
                    claimed.append(AlertNotice(r[0], self._alert(r[4:]), transition, r[2], r[3]))
            return claimed

        return await self._write(claim)

    async def settle_alert_notice(
        self,
        notice_id: int,
        *,
        now: datetime,
        error: str | None = None,
        retry_at: datetime | None = None,
    ) -> bool:
        """Mark this owner's claimed notice sent, or failed and due again at `retry_at`."""
        d = self.dialect
        if error is None:
            sql = (
                "UPDATE alert_notices SET status = 'sent', sent_at = ?, attempts = attempts + 1,"
                " claimed_by = NULL, claimed_until = NULL, last_error = NULL"
                " WHERE id = ? AND status = 'pending' AND claimed_by = ?"
            )
            args: list[Any] = [d.time(now), notice_id, self.owner]
        else:
            sql = (
                "UPDATE alert_notices SET next_attempt_at = ?, attempts = attempts + 1,"
                " claimed_by = NULL, claimed_until = NULL, last_error = ?"
                " WHERE id = ? AND status = 'pending' AND claimed_by = ?"
            )
            args = [d.time(retry_at or now), redact_optional(error), notice_id, self.owner]

        async def settle(tx: _Tx) -> bool:
            return await tx.execute(sql, *args) == 1

        return await self._write(settle)

    async def list_alerts(
        self, *, open_only: bool = False, since: datetime | None = None, limit: int = 100
    ) -> list[Alert]:
        """Open alerts and those recovered since `since`, newest first."""
        clause, args = " WHERE a.recovered_at IS NULL", []
        if not open_only:
            if since is None:
                clause = ""
            else:
                clause += " OR a.recovered_at >= ?"
                args.append(self.dialect.time(since))
        rows = await self._fetch(
            f"SELECT {_ALERT_COLUMNS} FROM alerts AS a{clause} ORDER BY a.id DESC LIMIT ?",
            *args,
            limit,
        )
        return [self._alert(r) for r in rows]


def _recovered(alert: Alert, now: datetime) -> Alert:
    return Alert(alert.id, alert.rule, alert.subject, alert.message, alert.opened_at, now)
