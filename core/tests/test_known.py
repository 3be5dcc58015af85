"""`context.known`: the records a poller reads back for its outlet, by recent business date."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from pydantic import SecretStr
from sambung.connectors import ConnectorSettings, Secrets, secret_values
from sambung.intake.known import MAX_DAYS, KnownRecords
from sambung.intake.polling import credentials_digest
from sambung.models import Payment, PaymentStatus
from sambung.store import IngestRequest, Store
from sambung.testing import outlet
from sambung.testing.manual_clock import ManualClock

KEMANG = outlet("kemang", "Asia/Jakarta")


def payment(
    ref: str, status: PaymentStatus, days_ago: int, clock: ManualClock, **kw: str
) -> Payment:
    at = clock.now() - timedelta(days=days_ago)
    return Payment(
        outlet=kw.get("outlet", "kemang"),
        source_system=kw.get("source", "midtrans"),
        external_id=ref,
        reference=ref,
        amount=Decimal(10000),
        status=status,
        occurred_at=at,
        business_date=at.astimezone(KEMANG.timezone).date(),
    )


async def test_recent_reads_the_outlets_last_business_days_filtered(
    store: Store, clock: ManualClock
) -> None:
    records = [
        payment("today-pending", PaymentStatus.PENDING, 0, clock),
        payment("today-paid", PaymentStatus.PAID, 0, clock),
        payment("yesterday-pending", PaymentStatus.PENDING, 1, clock),
        payment("old-pending", PaymentStatus.PENDING, 5, clock),
        payment("xendit-pending", PaymentStatus.PENDING, 0, clock, source="xendit"),
        payment("elsewhere", PaymentStatus.PENDING, 0, clock, outlet="panakkukang"),
    ]
    await store.ingest(IngestRequest(records=records, routes=[()] * len(records)))
    known = KnownRecords(store, KEMANG, clock)

    pending = await known.recent(
        "payment", days=2, source_systems={"midtrans"}, where={"status": {"pending"}}
    )
    every = await known.recent("payment", days=2)

    assert [k.external_id for k in pending] == ["today-pending", "yesterday-pending"]
    assert pending[0].data["status"] == "pending" and pending[0].source_system == "midtrans"
    assert {k.external_id for k in every} == {
        "today-pending",
        "today-paid",
        "yesterday-pending",
        "xendit-pending",
    }
    assert len(await known.recent("payment", days=2, limit=1)) == 1
    assert await known.recent("transaction", days=2) == []


def test_business_dates_are_the_outlets_and_bounded(clock: ManualClock) -> None:
    known = KnownRecords(None, KEMANG, clock)  # type: ignore[arg-type]  # no store needed
    today = clock.now().astimezone(KEMANG.timezone).date()

    assert known.business_dates(2) == [today, today - timedelta(days=1)]
    assert len(known.business_dates(10_000)) == MAX_DAYS
    assert known.business_dates(0) == [today]


def test_a_list_of_secrets_counts_as_the_connections_credentials() -> None:
    class Settings(ConnectorSettings):
        server_key: Secrets
        api_key: SecretStr

    one = Settings(mode="poll", server_key="a", api_key=SecretStr("k"))  # type: ignore[arg-type]
    other = Settings(mode="poll", server_key=["b", "a"], api_key=SecretStr("k"))  # type: ignore[arg-type]

    assert secret_values(one) == {"server_key.0": "a", "api_key": "k"}
    assert credentials_digest(one) != credentials_digest(other)
