"""The pure parts of backfills and cursors: the window a healing poller reads from what is
known, and the instants an operator types (any text: a moment, or a clear refusal)."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st
from sambung.intake.connections import operator_instant
from sambung.intake.known import KnownRecords, within
from sambung.models import PaymentStatus
from sambung.store import IngestRequest, Store
from sambung.testing.manual_clock import ManualClock

from .test_known import KEMANG, payment

WIB = ZoneInfo("Asia/Jakarta")


async def test_a_backfill_window_is_what_a_healing_poller_reads(
    store: Store, clock: ManualClock
) -> None:
    records = [
        payment("today", PaymentStatus.PENDING, 0, clock),
        payment("ten-days-ago", PaymentStatus.PENDING, 10, clock),
        payment("forty-days-ago", PaymentStatus.PENDING, 40, clock),
    ]
    await store.ingest(IngestRequest(records=records, routes=[()] * len(records)))
    known = KnownRecords(store, KEMANG, clock)
    old = clock.now() - timedelta(days=40)

    with within(old - timedelta(hours=1), old + timedelta(hours=1)):
        in_window = await known.recent("payment", days=3)
    live = await known.recent("payment", days=3)

    assert [k.external_id for k in in_window] == ["forty-days-ago"]
    assert [k.external_id for k in live] == ["today"]
    with within(clock.now() - timedelta(days=11), clock.now()):
        dates = known.business_dates(3)
    assert len(dates) in (11, 12) and dates[0] == clock.now().astimezone(WIB).date()


def test_a_date_is_the_outlets_day() -> None:
    assert operator_instant("2026-11-20", WIB) == datetime(2026, 11, 19, 17, tzinfo=UTC)
    end = operator_instant("2026-11-20", WIB, end_of_day=True)
    assert end == datetime(2026, 11, 20, 17, tzinfo=UTC)
    assert operator_instant("2026-11-20T09:30", WIB) == datetime(2026, 11, 20, 2, 30, tzinfo=UTC)
    assert operator_instant("2026-11-20T09:30Z", WIB) == datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


@given(st.text(max_size=40))
def test_any_text_is_a_moment_or_a_value_error(text: str) -> None:
    try:
        moment = operator_instant(text, WIB)
    except ValueError:
        return
    assert moment.tzinfo is not None and moment.utcoffset() == timedelta(0)


@given(st.datetimes(timezones=st.just(UTC)))
def test_an_iso_datetime_reads_back_as_itself(moment: datetime) -> None:
    assert operator_instant(moment.isoformat(), WIB) == moment


@given(st.dates(), st.booleans())
def test_any_date_is_a_moment_or_a_value_error(day: date, end_of_day: bool) -> None:
    try:
        moment = operator_instant(day.isoformat(), WIB, end_of_day=end_of_day)
    except ValueError:
        assert day.year in (1, 9999), day
        return
    assert moment.astimezone(WIB).time() == time(0)


def test_the_progress_bar_fills_with_the_position() -> None:
    from sambung.cli.operate import _bar

    task = {
        "state": "running",
        "since": "2026-11-20T00:00:00+00:00",
        "until": "2026-11-22T00:00:00+00:00",
        "position": "2026-11-21T00:00:00+00:00",
        "pages": 4,
        "records_new": 180,
        "records_changed": 2,
        "records_unchanged": 18,
    }
    out = io.StringIO()
    _bar(task, out)
    assert out.getvalue() == (
        "\r[" + "#" * 15 + "-" * 15 + "]  50% running: pages 4, new 180, changed 2, unchanged 18"
    )
    out = io.StringIO()
    _bar({**task, "position": None, "state": "queued"}, out)
    assert out.getvalue().startswith("\r[" + "-" * 30 + "]   0% queued")
