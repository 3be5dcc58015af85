"""Connection pauses and poll runs in the store, on both backends: a pause is durable with who,
when and why, and a connection keeps only its newest runs."""

from __future__ import annotations

from datetime import timedelta

from sambung.redaction import secrets
from sambung.store import PollRun, RunOutcome, Store
from sambung.store.controls import ControlStore


def run(store: Store, n: int, *, connector: str = "qasir", error: str | None = None) -> PollRun:
    """The `n`-th run of a connection, a minute apart."""
    started = store.clock.now() + timedelta(minutes=n)
    return PollRun(
        "kemang",
        connector,
        "live",
        started,
        started + timedelta(seconds=2),
        RunOutcome.FAILED if error else RunOutcome.OK,
        pages=1,
        records_fetched=3,
        records_new=1,
        records_changed=1,
        error=error,
        cursor_before=f"c{n}",
        cursor_after=f"c{n + 1}",
    )


async def test_a_pause_is_kept_with_who_when_and_why_until_resumed(store: Store) -> None:
    assert await store.get_control("kemang", "qasir") is None
    paused = await store.set_paused("kemang", "qasir", True, actor="ayu", reason="vendor outage")
    assert (paused.paused, paused.actor, paused.reason) == (True, "ayu", "vendor outage")
    assert paused.changed_at == store.clock.now()
    assert await store.get_control("kemang", "qasir") == paused
    resumed = await store.set_paused("kemang", "qasir", False, actor="budi", reason=None)
    assert await store.list_controls() == [resumed]
    assert not resumed.paused and resumed.actor == "budi" and resumed.reason is None
    assert await store.control_changes("kemang", "qasir") == [resumed, paused]
    assert await store.control_changes("kemang", "qasir", limit=1) == [resumed]
    assert await store.control_changes("kemang", "moka") == []


async def test_pauses_are_per_connection(store: Store) -> None:
    await store.set_paused("kemang", "qasir", True, actor="ayu", reason=None)
    await store.set_paused("kemang", "moka", False, actor="ayu", reason=None)
    shown = {(c.connector, c.paused) for c in await store.list_controls()}
    assert shown == {("qasir", True), ("moka", False)}


async def test_runs_read_back_newest_first_with_their_counts(store: Store) -> None:
    controls: ControlStore = store
    await controls.record_run(run(store, 1))
    await controls.record_run(run(store, 2, error="RetriableError: 503 from vendor"))
    newest, older = await controls.recent_runs("kemang", "qasir")
    assert newest.outcome is RunOutcome.FAILED and newest.error == "RetriableError: 503 from vendor"
    assert (older.outcome, older.cursor_before, older.cursor_after) == (RunOutcome.OK, "c1", "c2")
    assert older.started_at == run(store, 1).started_at
    assert (older.pages, older.records_fetched, older.records_unchanged) == (1, 3, 1)
    assert newest.id is not None and older.id is not None and newest.id > older.id


async def test_a_secret_in_a_run_error_is_masked_before_it_is_stored(store: Store) -> None:
    secrets.learn("sk_live_abcdef123456")
    await store.record_run(run(store, 1, error="AuthError: token=sk_live_abcdef123456\x00"))
    [shown] = await store.recent_runs("kemang", "qasir")
    assert shown.error == "AuthError: token=***\\x00"


async def test_only_the_newest_runs_of_a_connection_are_kept(store: Store) -> None:
    for n in range(7):
        await store.record_run(run(store, n), keep=5)
        # Another connection's runs interleave: they neither count nor go.
        await store.record_run(run(store, n, connector="moka"), keep=100)
    kept = await store.recent_runs("kemang", "qasir", limit=50)
    assert [r.cursor_before for r in kept] == ["c6", "c5", "c4", "c3", "c2"]
    assert len(await store.recent_runs("kemang", "moka", limit=50)) == 7
    assert len(await store.recent_runs("kemang", "qasir", limit=2)) == 2
