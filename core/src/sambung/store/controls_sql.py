"""The SQL of connection pauses and poll runs, written once for both backends (see
`sql.SqlStore`, which mixes this in)."""

from __future__ import annotations

import abc
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, ClassVar, Protocol, TypeVar

from sambung.clock import Clock

from .base import printable
from .controls import RUNS_KEPT, ConnectionControl, ControlStore, PollRun, RunOutcome
from .dialect import Dialect

_T = TypeVar("_T")
Row = Sequence[Any]

_CONTROL_COLUMNS = "outlet, connector, paused, reason, actor, changed_at"
_RUN_COLUMNS = (
    "id, outlet, connector, kind, started_at, finished_at, outcome, pages, records_fetched,"
    " records_new, records_changed, error, cursor_before, cursor_after"
)


class _Tx(Protocol):
    """The part of `sql.Tx` used here (a protocol of its own: `sql` imports this module)."""

    async def execute(self, sql: str, *args: Any) -> int:
        """Run one statement; how many rows it touched."""
        ...


class ControlSql(ControlStore):
    """Connection pauses and poll runs over a SQL store's reads and transactions."""

    dialect: ClassVar[Dialect]
    clock: Clock

    @abc.abstractmethod
    async def _fetch(self, sql: str, *args: Any) -> list[Row]:
        """The rows of one read."""

    @abc.abstractmethod
    async def _execute(self, sql: str, *args: Any) -> int:
        """Run one write statement on its own."""

    @abc.abstractmethod
    async def _write(self, work: Callable[[Any], Coroutine[Any, Any, _T]]) -> _T:
        """Run `work` in one write transaction."""

    async def set_paused(
        self, outlet: str, connector: str, paused: bool, *, actor: str, reason: str | None
    ) -> ConnectionControl:
        """Pause (or resume) one connection, recording who and why, and the change with them."""
        now = self.clock.now()
        values = (outlet, connector, paused, reason, actor, self.dialect.time(now))

        async def change(tx: _Tx) -> None:
            await tx.execute(
                f"INSERT INTO connection_controls ({_CONTROL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (outlet, connector) DO UPDATE SET paused = excluded.paused,"
                " reason = excluded.reason, actor = excluded.actor,"
                " changed_at = excluded.changed_at",
                *values,
            )
            await tx.execute(
                "INSERT INTO connection_control_changes (outlet, connector, paused, reason,"
                " actor, at) VALUES (?, ?, ?, ?, ?, ?)",
                *values,
            )

        await self._write(change)
        return ConnectionControl(outlet, connector, paused, reason, actor, now)

    async def control_changes(
        self, outlet: str, connector: str, limit: int = 20
    ) -> list[ConnectionControl]:
        """One connection's pauses and resumes, newest first."""
        rows = await self._fetch(
            "SELECT outlet, connector, paused, reason, actor, at FROM connection_control_changes"
            " WHERE outlet = ? AND connector = ? ORDER BY id DESC LIMIT ?",
            outlet,
            connector,
            limit,
        )
        return [self._control(row) for row in rows]

    async def get_control(self, outlet: str, connector: str) -> ConnectionControl | None:
        """One connection's pause state, if an operator ever paused or resumed it."""
        rows = await self._fetch(
            f"SELECT {_CONTROL_COLUMNS} FROM connection_controls"
            " WHERE outlet = ? AND connector = ?",
            outlet,
            connector,
        )
        return self._control(rows[0]) if rows else None

    async def list_controls(self) -> list[ConnectionControl]:
        """Every connection an operator ever paused or resumed, by outlet and connector."""
        rows = await self._fetch(
            f"SELECT {_CONTROL_COLUMNS} FROM connection_controls ORDER BY outlet, connector"
        )
        return [self._control(row) for row in rows]

    def _control(self, r: Row) -> ConnectionControl:
        return ConnectionControl(r[0], r[1], bool(r[2]), r[3], r[4], self.dialect.read_time(r[5]))

    async def record_run(self, run: PollRun, *, keep: int = RUNS_KEPT) -> None:
        """Record one finished run, pruning that connection's beyond the newest `keep`."""
        d = self.dialect

        async def record(tx: _Tx) -> None:
            await tx.execute(
                "INSERT INTO poll_runs (outlet, connector, kind, started_at, finished_at,"
                " outcome, pages, records_fetched, records_new, records_changed, error,"
                " cursor_before, cursor_after) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                run.outlet,
                run.connector,
                run.kind,
                d.time(run.started_at),
                d.time(run.finished_at),
                run.outcome.value,
                run.pages,
                run.records_fetched,
                run.records_new,
                run.records_changed,
                # NUL or a lone surrogate from a vendor's body must not fail the write.
                None if run.error is None else printable(run.error),
                run.cursor_before,
                run.cursor_after,
            )
            # The newest `keep` stay: one indexed range delete below the `keep`-th newest id,
            # touching at most the run that just fell out (a few after a lower `keep`).
            await tx.execute(
                "DELETE FROM poll_runs WHERE outlet = ? AND connector = ? AND id <= ("
                "SELECT id FROM poll_runs WHERE outlet = ? AND connector = ?"
                " ORDER BY id DESC LIMIT 1 OFFSET ?)",
                run.outlet,
                run.connector,
                run.outlet,
                run.connector,
                keep,
            )

        await self._write(record)

    async def recent_runs(self, outlet: str, connector: str, limit: int = 20) -> list[PollRun]:
        """One connection's runs, newest first."""
        rows = await self._fetch(
            f"SELECT {_RUN_COLUMNS} FROM poll_runs WHERE outlet = ? AND connector = ?"
            " ORDER BY id DESC LIMIT ?",
            outlet,
            connector,
            limit,
        )
        time = self.dialect.read_time
        return [
            PollRun(
                id=r[0],
                outlet=r[1],
                connector=r[2],
                kind=r[3],
                started_at=time(r[4]),
                finished_at=time(r[5]),
                outcome=RunOutcome(r[6]),
                pages=int(r[7]),
                records_fetched=int(r[8]),
                records_new=int(r[9]),
                records_changed=int(r[10]),
                error=r[11],
                cursor_before=r[12],
                cursor_after=r[13],
            )
            for r in rows
        ]
