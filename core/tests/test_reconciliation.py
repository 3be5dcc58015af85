"""Daily reconciliation: how a day's sales and payments match (pure), and the loop that keeps
the results current in the store (both backends)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from sambung.config import LoadedConfig, load_config
from sambung.delivery.reconciliation import (
    ReconciliationService,
    channel_method,
    differs_beyond,
    reconcile,
    sale_reference,
)
from sambung.errors import ConfigError
from sambung.models import (
    Payment,
    PaymentMethod,
    PaymentStatus,
    Reconciliation,
    Transaction,
    TransactionType,
)
from sambung.plugins import load_plugins
from sambung.store import IngestRequest, Store, open_store
from sambung.testing.accounting import JAKARTA, OUTLET, days_ago, sale
from sambung.testing.manual_clock import ManualClock

DAY = date(2026, 11, 20)
MATCH: dict[str, str | None] = {"xendit": "{external_id}", "midtrans": "{external_id}"}
METHODS = (PaymentMethod.QRIS, PaymentMethod.EWALLET, PaymentMethod.BANK_TRANSFER)


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, 20, hour, minute, tzinfo=JAKARTA)


def pos(
    external_id: str,
    total: int | str,
    *,
    when: datetime,
    label: str = "QRIS",
    type: TransactionType = TransactionType.SALE,
    reverses: str | None = None,
) -> Transaction:
    """A POS sale (or refund, void) paid with `label`."""
    t = sale(external_id, at=when, total=total, type=type, reverses=reverses)
    return t.model_copy(
        update={"payment_method": PaymentMethod.from_label(label), "payment_method_label": label}
    )


def paid(
    reference: str,
    amount: int | str,
    *,
    when: datetime,
    fee: int | str = 0,
    channel: str = "QRIS",
    status: PaymentStatus = PaymentStatus.PAID,
    source: str = "xendit",
    external_id: str | None = None,
    received: int | str | None = None,
) -> Payment:
    """A gateway payment of `reference`, paid at `when` (dated in Jakarta, as a plugin would)."""
    return Payment(
        outlet=OUTLET,
        source_system=source,
        external_id=external_id or f"inv-{reference}",
        reference=reference,
        amount=Decimal(amount),
        fee=Decimal(fee),
        received_amount=Decimal(received) if received is not None else None,
        status=status,
        channel=channel,
        paid_at=when if status is not PaymentStatus.PENDING else None,
        occurred_at=when,
        business_date=when.astimezone(JAKARTA).date(),
    )


def run(transactions: list[Transaction], payments: list[Payment]) -> Reconciliation:
    return reconcile(OUTLET, DAY, transactions, payments, match=MATCH, methods=METHODS)


# -- matching (pure) -----------------------------------------------------------------------------


def test_a_day_that_matches_by_reference_with_fees_apart() -> None:
    result = run(
        [
            pos("S-1", 27500, when=at(9)),
            pos("S-2", 45000, when=at(10), label="GoPay"),
            pos("S-3", 18000, when=at(11), label="Tunai"),  # cash: no gateway
        ],
        [
            paid("S-1", 27500, when=at(9, 1), fee=193),
            paid("S-2", 45000, when=at(10, 1), fee=900, channel="GOPAY", received=44100),
        ],
    )
    assert result.status == "matched"
    assert result.external_id == f"{OUTLET}:2026-11-20"
    assert [(m.sale, m.payment, m.by, m.difference) for m in result.matched] == [
        ("pawoon:S-1", "xendit:inv-S-1", "reference", 0),
        ("pawoon:S-2", "xendit:inv-S-2", "reference", 0),
    ]
    assert (result.gross, result.fees, result.net) == (Decimal(72500), Decimal(1093), 71407)
    assert result.pos_total == Decimal(90500)
    assert {m.method: m.total for m in result.pos_by_method} == {
        PaymentMethod.QRIS: 27500,
        PaymentMethod.EWALLET: 45000,
        PaymentMethod.CASH: 18000,
    }
    assert [(c.method, c.pos, c.payments, c.difference) for c in result.methods] == [
        (PaymentMethod.QRIS, 27500, 27500, 0),
        (PaymentMethod.EWALLET, 45000, 45000, 0),
        (PaymentMethod.BANK_TRANSFER, 0, 0, 0),
    ]
    assert result.difference == 0 and not result.unmatched_sales
    assert [(c.key, c.gross, c.fee, c.net) for c in result.payments_by_channel] == [
        ("GOPAY", 45000, 900, 44100),
        ("QRIS", 27500, 193, 27307),
    ]


def test_a_missing_payment_and_an_extra_payment_are_listed() -> None:
    result = run(
        [pos("S-1", 27500, when=at(9)), pos("S-2", 30000, when=at(10))],
        [
            paid("S-1", 27500, when=at(9, 1)),
            paid("ORDER-77", 12000, when=at(12)),  # no sale names it, none of its amount
        ],
    )
    assert result.status == "differs"
    assert [(s.sale, s.amount) for s in result.unmatched_sales] == [("pawoon:S-2", 30000)]
    assert [(p.payment, p.reference, p.amount) for p in result.unmatched_payments] == [
        ("xendit:inv-ORDER-77", "ORDER-77", 12000)
    ]
    [qris] = [c for c in result.methods if c.method is PaymentMethod.QRIS]
    assert (qris.pos, qris.payments, qris.difference) == (57500, 39500, -18000)
    assert result.difference == Decimal(-18000)


def test_a_partial_payment_is_linked_with_its_difference() -> None:
    result = run([pos("S-1", 50000, when=at(9))], [paid("S-1", 45000, when=at(9, 2))])
    [pair] = result.matched
    assert (pair.sale_amount, pair.payment_amount, pair.difference) == (50000, 45000, -5000)
    assert result.status == "differs" and result.difference == Decimal(-5000)
    assert differs_beyond(result, Decimal(4999))
    assert not differs_beyond(result, Decimal(5000))


def test_a_payment_without_a_usable_reference_is_matched_by_amount_within_its_method() -> None:
    result = run(
        [pos("S-1", 27500, when=at(9)), pos("S-2", 27500, when=at(9, 30), label="OVO")],
        [paid("gateway-own-id", 27500, when=at(9, 31), channel="OVO")],
    )
    [pair] = result.matched
    assert (pair.sale, pair.by) == ("pawoon:S-2", "amount")  # the OVO sale, not the QRIS one
    assert [s.sale for s in result.unmatched_sales] == ["pawoon:S-1"]


def test_a_refunded_sale_expects_no_payment_and_a_refunded_payment_counts_nothing() -> None:
    result = run(
        [
            pos("S-1", 40000, when=at(9)),
            pos("R-1", 40000, when=at(11), type=TransactionType.REFUND, reverses="S-1"),
            pos("S-2", 30000, when=at(12)),
            pos("R-2", 10000, when=at(13), type=TransactionType.REFUND, reverses="S-2"),
        ],
        [
            paid("S-1", 40000, when=at(9, 1), status=PaymentStatus.REFUNDED),
            paid("S-2", 30000, when=at(12, 1)),
        ],
    )
    assert (result.sales, result.refunds) == (2, 2)
    assert result.pos_total == Decimal(20000)
    assert not result.unmatched_sales and not result.unmatched_payments
    # S-2 was partly refunded at the till; the gateway still collected all of it.
    [pair] = result.matched
    assert (pair.sale, pair.sale_amount, pair.difference) == ("pawoon:S-2", 20000, 10000)
    assert {s.key: s.gross for s in result.payments_by_status} == {"paid": 30000, "refunded": 40000}
    assert result.gross == Decimal(30000)


def test_voids_count_as_daily_summaries_count_them() -> None:
    result = run(
        [
            pos("S-1", 25000, when=at(9)),
            pos("V-1", 25000, when=at(9, 5), type=TransactionType.VOID, reverses="S-1"),
            # The void of another day's sale counts against this one, and stands unmatched.
            pos("V-0", 15000, when=at(10), type=TransactionType.VOID, reverses="S-0"),
        ],
        [],
    )
    assert (result.sales, result.voids) == (1, 2)
    assert result.pos_total == Decimal(-15000)
    assert [(s.sale, s.type, s.amount) for s in result.unmatched_sales] == [
        ("pawoon:V-0", TransactionType.VOID, -15000)
    ]


def test_a_duplicate_reference_links_one_payment_and_leaves_the_other() -> None:
    result = run(
        [pos("S-1", 27500, when=at(9))],
        [
            paid("S-1", 27500, when=at(9, 1), external_id="inv-a"),
            paid("S-1", 27500, when=at(9, 2), external_id="inv-b"),
        ],
    )
    assert [m.payment for m in result.matched] == ["xendit:inv-a"]
    assert [p.payment for p in result.unmatched_payments] == ["xendit:inv-b"]
    assert result.difference == Decimal(27500)


def test_pending_and_expired_payments_are_shown_but_not_counted() -> None:
    result = run(
        [pos("S-1", 27500, when=at(9))],
        [
            paid("S-1", 27500, when=at(9, 1), status=PaymentStatus.PENDING),
            paid("S-9", 5000, when=at(9, 2), status=PaymentStatus.EXPIRED),
        ],
    )
    assert {s.key: (s.count, s.gross) for s in result.payments_by_status} == {
        "expired": (1, 5000),
        "pending": (1, 27500),
    }
    assert result.gross == 0 and [s.sale for s in result.unmatched_sales] == ["pawoon:S-1"]


def test_a_reference_template_names_the_sales_fields() -> None:
    sold = pos("TRX-9", 1000, when=at(9))
    assert sale_reference(sold, "PW-{external_id}") == "PW-TRX-9"
    result = reconcile(
        OUTLET,
        DAY,
        [sold],
        [paid("PW-TRX-9", 1000, when=at(9, 1), source="midtrans")],
        match={"midtrans": "PW-{external_id}"},
        methods=METHODS,
    )
    assert [m.by for m in result.matched] == ["reference"]


def test_a_payment_under_a_method_not_compared_differs_against_nothing() -> None:
    result = run(
        [pos("S-1", 80000, when=at(9), label="Kartu Debit BCA")],  # paid at the bank's EDC
        [paid("ORDER-9", 80000, when=at(9, 1), channel="CREDIT_CARD")],
    )
    [card] = [c for c in result.methods if c.method is PaymentMethod.CARD]
    assert (card.pos, card.payments, card.difference) == (0, 80000, 80000)
    assert not result.matched and not result.unmatched_sales
    assert [p.method for p in result.unmatched_payments] == [PaymentMethod.CARD]


@pytest.mark.parametrize(
    ("channel", "method"),
    [
        ("QRIS", PaymentMethod.QRIS),
        ("qris:gopay", PaymentMethod.QRIS),
        ("OVO", PaymentMethod.EWALLET),
        ("SHOPEEPAY", PaymentMethod.EWALLET),
        ("BCA", PaymentMethod.BANK_TRANSFER),
        ("MANDIRI", PaymentMethod.BANK_TRANSFER),
        ("bank_transfer:bni", PaymentMethod.BANK_TRANSFER),
        ("echannel", PaymentMethod.BANK_TRANSFER),
        ("CREDIT_CARD", PaymentMethod.CARD),
        ("cstore:indomaret", PaymentMethod.OTHER),
        (None, PaymentMethod.OTHER),
    ],
)
def test_a_channel_names_its_method(channel: str | None, method: PaymentMethod) -> None:
    assert channel_method(channel) is method


def test_rupiah_stay_exact_whatever_the_number_of_payments() -> None:
    # 0.1 + 0.2 is 0.30000000000000004 in floats; these are Decimals all the way.
    sales = [pos(f"S-{n}", "0.1" if n % 2 else "0.2", when=at(9, n)) for n in range(30)]
    payments = [paid(f"S-{n}", "0.1" if n % 2 else "0.2", when=at(10, n)) for n in range(30)]
    result = run(sales, payments)
    assert result.gross == Decimal("4.5") and result.difference == 0
    assert result.status == "matched"


amounts = st.integers(min_value=1, max_value=5_000_000)
labels = st.sampled_from(["QRIS", "GoPay", "OVO", "Tunai", "Transfer BCA", "Kartu Debit"])


@settings(max_examples=150, deadline=None)
@given(
    sales=st.lists(st.tuples(amounts, labels, st.booleans()), max_size=12),
    payments=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=14),
            amounts,
            st.sampled_from(["QRIS", "OVO", "BCA"]),
            st.sampled_from(list(PaymentStatus)),
        ),
        max_size=12,
    ),
)
def test_matched_and_unmatched_add_up_to_the_totals(
    sales: list[tuple[int, str, bool]], payments: list[tuple[int, int, str, PaymentStatus]]
) -> None:
    transactions: list[Transaction] = []
    for n, (amount, label, refunded) in enumerate(sales):
        transactions.append(pos(f"S-{n}", amount, when=at(9, n)))
        transactions[-1] = transactions[-1].model_copy(
            update={"payment_method": PaymentMethod.from_label(label)}
        )
        if refunded:
            refund = pos(f"R-{n}", amount // 2 or 1, when=at(15, n), label=label)
            transactions.append(
                refund.model_copy(
                    update={"type": TransactionType.REFUND, "reverses_external_id": f"S-{n}"}
                )
            )
    gateway = [
        paid(
            f"S-{ref}", amount, when=at(10, n), channel=channel, status=status, external_id=f"p{n}"
        )
        for n, (ref, amount, channel, status) in enumerate(payments)
    ]
    result = run(transactions, gateway)

    compared = {c.method: c for c in result.methods}
    pos_compared = sum((m.total for m in result.pos_by_method if m.method in METHODS), Decimal(0))
    sales_side = sum((m.sale_amount for m in result.matched), Decimal(0)) + sum(
        (s.amount for s in result.unmatched_sales), Decimal(0)
    )
    payments_side = sum((m.payment_amount for m in result.matched), Decimal(0)) + sum(
        (p.amount for p in result.unmatched_payments), Decimal(0)
    )
    assert sales_side == pos_compared
    assert payments_side == result.gross
    assert result.gross == sum(
        (p.amount for p in gateway if p.status in (PaymentStatus.PAID, PaymentStatus.SETTLED)),
        Decimal(0),
    )
    assert result.difference == sum((c.difference for c in compared.values()), Decimal(0))
    assert result.pos_total == sum((m.total for m in result.pos_by_method), Decimal(0))
    assert (result.status == "matched") == (not differs_beyond(result, Decimal(0)))
    # Each payment is linked at most once, each sale too.
    assert len({m.payment for m in result.matched}) == len(result.matched)
    assert len({m.sale for m in result.matched}) == len(result.matched)


def test_a_reference_template_naming_another_field_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sambung.yaml"
    document = {
        "outlets": [{"id": OUTLET, "name": "Kemang"}],
        "reconciliation": {"match": {"xendit": "{receipt}"}},
    }
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"reconciliation\.match\.xendit"):
        load_config(path, load_plugins(frozenset()))


# -- the loop, on both stores ----------------------------------------------------------------------


@dataclass
class Rig:
    """A store and the reconciliation loop for one outlet with a POS and a payment gateway."""

    loaded: LoadedConfig
    store: Store
    clock: ManualClock
    service: ReconciliationService

    @classmethod
    @asynccontextmanager
    async def start(
        cls,
        folder: Path,
        store_url: str,
        *,
        timezone: str = "Asia/Jakarta",
        after: str = "47:00",
        start: datetime | None = None,
    ) -> AsyncIterator[Rig]:
        document: dict[str, Any] = {
            "outlets": [
                {
                    "id": OUTLET,
                    "name": "Kemang",
                    "timezone": timezone,
                    "connectors": {
                        "pawoon": {"mode": "webhook", "webhook_secret": "pawoon-test-secret"},
                        "xendit": {
                            "mode": "webhook",
                            "callback_token": "xendit-test-callback-token",
                        },
                    },
                }
            ],
            "sinks": {"days": {"type": "jsonl", "path": "out.jsonl", "kinds": ["reconciliation"]}},
            "summaries": {"after": after, "backfill_days": 3},
            "reconciliation": {"tolerance": 100},
        }
        path = folder / "sambung.yaml"
        path.write_text(yaml.safe_dump(document), encoding="utf-8")
        loaded = load_config(path, load_plugins())
        clock = ManualClock(start)
        store = open_store(store_url, base_dir=folder, clock=clock)
        await store.open()
        try:
            yield cls(loaded, store, clock, ReconciliationService(store, loaded, clock))
        finally:
            await store.close()

    async def ingest(self, *records: Transaction | Payment) -> None:
        routes = [self.loaded.sinks_for(r.outlet, r.kind) for r in records]
        await self.store.ingest(IngestRequest(records=records, routes=routes))

    async def result(self, day: date) -> tuple[int, Reconciliation]:
        stored = await self.store.get_record(OUTLET, "sambung", "reconciliation", f"{OUTLET}:{day}")
        assert stored is not None
        return stored.revision, Reconciliation.model_validate_json(stored.payload)


async def test_a_late_payment_makes_a_new_revision_that_matches(
    tmp_path: Path, sambung_store_url: str
) -> None:
    async with Rig.start(tmp_path, sambung_store_url) as rig:
        closed = days_ago(2, 20)
        day = closed.date()
        await rig.ingest(
            pos("S-1", 27500, when=closed),
            pos("S-2", 45000, when=closed + timedelta(minutes=5), label="OVO"),
            paid("S-1", 27500, when=closed + timedelta(minutes=1), fee=193),
            pos("S-9", 10000, when=days_ago(0, 0)),  # today: open, not yet reconciled
        )
        assert await rig.service.run_once() >= 1
        revision, first = await rig.result(day)
        assert (revision, first.status, first.difference) == (1, "differs", Decimal(-45000))
        assert [s.sale for s in first.unmatched_sales] == ["pawoon:S-2"]
        assert [r.external_id for r in await rig.service.differing()] == [f"{OUTLET}:{day}"]
        today = days_ago(0, 0).date()
        assert (
            await rig.store.get_record(OUTLET, "sambung", "reconciliation", f"{OUTLET}:{today}")
            is None
        )
        outbox = await rig.store.list_outbox()
        assert [json.loads(r.payload)["kind"] for r in outbox] == ["reconciliation"]

        # A recompute with nothing new queues nothing; a sale of the open day changes nothing
        # of the closed one (and moves the loop's watermark past the closed day's sales).
        rig.clock.advance(60)
        await rig.ingest(pos("S-10", 5000, when=days_ago(0, 0, 1)))
        await rig.service.run_once()
        assert len(await rig.store.list_outbox()) == 1

        # The e-wallet payment's callback arrives after the day closed: dated by its paid_at,
        # it alone makes the closed day be reconciled again.
        rig.clock.advance(60)
        await rig.ingest(
            paid("S-2", 45000, when=closed + timedelta(minutes=6), fee=900, channel="OVO")
        )
        await rig.service.run_once()
        revision, second = await rig.result(day)
        assert (revision, second.status, second.difference) == (2, "matched", Decimal(0))
        assert (second.gross, second.fees, second.net) == (72500, 1093, 71407)
        assert len(await rig.store.list_outbox()) == 2
        assert await rig.service.differing() == []
        [stored] = await rig.service.stored(OUTLET, [day])
        assert (stored.result, stored.revision, stored.differs) == (second, 2, False)


async def test_a_refund_after_the_day_closed_recomputes_it(
    tmp_path: Path, sambung_store_url: str
) -> None:
    async with Rig.start(tmp_path, sambung_store_url) as rig:
        closed = days_ago(2, 12)
        await rig.ingest(pos("S-1", 40000, when=closed))
        await rig.service.run_once()
        _, before = await rig.result(closed.date())
        assert before.status == "differs"  # a QRIS sale with no payment

        await rig.ingest(
            pos(
                "R-1",
                40000,
                when=closed + timedelta(hours=1),
                type=TransactionType.REFUND,
                reverses="S-1",
            )
        )
        await rig.service.run_once()
        revision, after = await rig.result(closed.date())
        assert (revision, after.status, after.refunds, after.pos_total) == (2, "matched", 1, 0)


async def test_a_day_that_matches_and_one_with_an_extra_payment(
    tmp_path: Path, sambung_store_url: str
) -> None:
    async with Rig.start(tmp_path, sambung_store_url) as rig:
        good, extra = days_ago(3, 12), days_ago(2, 12)
        await rig.ingest(
            pos("A-1", 27500, when=good),
            pos("A-2", 12000, when=good, label="Tunai"),
            paid("A-1", 27500, when=good, fee=193),
            pos("B-1", 30000, when=extra),
            paid("B-1", 30000, when=extra),
            paid("NO-SALE-7", 15000, when=extra, channel="OVO"),
        )
        await rig.service.run_once()
        _, matched = await rig.result(good.date())
        assert (matched.status, matched.difference, matched.pos_total) == ("matched", 0, 39500)
        assert (matched.gross, matched.fees, matched.net) == (27500, 193, 27307)
        _, differs = await rig.result(extra.date())
        assert (differs.status, differs.difference) == ("differs", Decimal(15000))
        assert [(p.payment, p.method) for p in differs.unmatched_payments] == [
            ("xendit:inv-NO-SALE-7", PaymentMethod.EWALLET)
        ]
        assert [r.business_date for r in await rig.service.differing()] == [extra.date()]


async def test_a_difference_within_the_tolerance_is_not_reported(
    tmp_path: Path, sambung_store_url: str
) -> None:
    async with Rig.start(tmp_path, sambung_store_url) as rig:
        closed = days_ago(2, 12)
        await rig.ingest(pos("S-1", 40000, when=closed), paid("S-1", 39950, when=closed))
        await rig.service.run_once()
        _, result = await rig.result(closed.date())
        assert result.status == "differs" and result.difference == Decimal(-50)
        assert await rig.service.differing() == []  # tolerance: 100 rupiah


async def test_the_admin_api_lists_reconciliations_and_refuses_bad_queries(
    tmp_path: Path, sambung_store_url: str
) -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer
    from sambung.delivery.reconciliation import add_reconciliation_routes

    async with Rig.start(tmp_path, sambung_store_url) as rig:
        closed = days_ago(2, 12)
        await rig.ingest(pos("S-1", 40000, when=closed), paid("S-1", 40000, when=closed))
        await rig.ingest(pos("S-2", 15000, when=days_ago(3, 12)))
        await rig.service.run_once()
        app = web.Application()
        add_reconciliation_routes(app, lambda: rig.service)
        async with TestClient(TestServer(app)) as client:
            answer = await client.get(
                "/api/v1/reconciliations", params={"since": days_ago(3, 0).date().isoformat()}
            )
            body = await answer.json()
            assert answer.status == 200 and body["tolerance"] == "100"
            shown = [
                (r["business_date"], r["status"], r["revision"]) for r in body["reconciliations"]
            ]
            assert shown == [
                (days_ago(3, 0).date().isoformat(), "differs", 1),
                (closed.date().isoformat(), "matched", 1),
            ]
            assert body["reconciliations"][1]["gross"] == "40000"  # exact, as text

            answer = await client.get(
                "/api/v1/reconciliations",
                params={"differs": "true", "since": days_ago(3, 0).date().isoformat()},
            )
            assert [r["business_date"] for r in (await answer.json())["reconciliations"]] == [
                days_ago(3, 0).date().isoformat()
            ]
            answer = await client.get("/api/v1/reconciliations", params={"date": "yesterday"})
            assert answer.status == 400
            assert (await answer.json())["problems"][0]["path"] == "date"
            answer = await client.get("/api/v1/reconciliations", params={"outlet": "nowhere"})
            assert answer.status == 404


async def test_the_command_prints_the_table_and_json(
    tmp_path: Path, sambung_store_url: str
) -> None:
    async with Rig.start(tmp_path, sambung_store_url) as rig:
        closed = days_ago(2, 12)
        await rig.ingest(
            pos("S-1", 40000, when=closed),
            pos("S-2", 25000, when=closed, label="Tunai"),
            paid("S-1", 38000, when=closed, fee=280),
        )
        await rig.service.run_once()
    # The YAML names the store by a path relative to the test folder only for SQLite.
    config = str(tmp_path / "sambung.yaml")
    document = yaml.safe_load(Path(config).read_text(encoding="utf-8"))
    document["store"] = {"url": sambung_store_url}
    Path(config).write_text(yaml.safe_dump(document), encoding="utf-8")
    day = closed.date().isoformat()

    def reconcile(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "sambung", "reconcile", "-c", config, "--date", day]
        return subprocess.run([*command, *args], capture_output=True, text=True, check=False)

    shown = await asyncio.to_thread(reconcile)
    assert shown.returncode == 1, shown.stderr
    out = shown.stdout
    assert f"kemang {day} (Asia/Jakarta)  DIFFERS by -2,000" in out
    assert "qris" in out and "40,000" in out and "38,000" in out
    assert "cash (not compared)  25,000" in out
    assert "amount differs  pawoon:S-1 40,000 <- xendit:inv-S-1 38,000 (-2,000)" in out

    as_json = await asyncio.to_thread(reconcile, "--json")
    [line] = as_json.stdout.splitlines()
    assert json.loads(line)["difference"] == "-2000"


async def test_the_alert_fires_on_a_closed_day_that_keeps_differing_and_recovers(
    tmp_path: Path, sambung_store_url: str
) -> None:
    from sambung.alerts.rules import RULES, RuleContext

    async with Rig.start(tmp_path, sambung_store_url) as rig:
        closed = days_ago(2, 12)
        await rig.ingest(pos("S-1", 40000, when=closed), pos("S-2", 30000, when=closed))
        await rig.ingest(paid("S-1", 40000, when=closed))
        await rig.service.run_once()
        seen: dict[str, Any] = {}
        check = RULES["reconciliation_differs"]

        def ctx() -> RuleContext:
            return RuleContext(rig.store, rig.loaded, rig.clock.now(), first_seen=seen)

        # A payment often lands a moment after its sale: not yet, only once it keeps differing.
        assert await check(ctx()) == {}
        rig.clock.advance(10 * 60)
        found = await check(ctx())
        subject = f"{OUTLET}/{closed.date()}"
        assert list(found) == [subject]
        assert (
            "differ by -30,000 (1 sales without payment, 0 payments without sale)"
            in (found[subject])
        )
        assert f"sambung reconcile --outlet {OUTLET} --date {closed.date()}" in found[subject]

        await rig.ingest(paid("S-2", 30000, when=closed))
        await rig.service.run_once()
        assert await check(ctx()) == {}
        assert seen == {}  # a new difference counts from when it starts


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["outlet", "date", "since", "differs", "until", "limit"]),
        st.text(max_size=20),
    )
)
def test_any_query_string_is_read_or_refused_with_a_reason(query: dict[str, str]) -> None:
    from pydantic import ValidationError
    from sambung.delivery.reconciliation import ReconciliationQuery
    from sambung.validation import request_problem

    try:
        ReconciliationQuery.model_validate(query)
    except ValidationError as err:
        problem = request_problem(err, ReconciliationQuery)
        assert problem["error"] == "invalid_request" and problem["problems"]
