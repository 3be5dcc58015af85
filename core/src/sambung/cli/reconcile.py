"""`sambung reconcile`: the daily reconciliations of POS sales against gateway payments."""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import date
from decimal import Decimal
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from sambung.clock import SystemClock
from sambung.delivery.reconciliation import (
    ReconciliationQuery,
    ReconciliationService,
    StoredReconciliation,
)
from sambung.models import Reconciliation
from sambung.runtime.status import table
from sambung.store import open_store

from .loading import Commands, UsageError, check_outlet, load


def add_reconcile_command(commands: Commands) -> None:
    """Register `sambung reconcile` on the CLI's subcommands."""
    sub = commands.add(
        "reconcile",
        "Print the daily reconciliation of POS sales against gateway payments.",
        _handler,
        need_env=False,
    )
    sub.add_argument("--outlet", help="one outlet (default: every reconciled outlet)")
    when = sub.add_mutually_exclusive_group()
    when.add_argument("--date", type=date.fromisoformat, help="one business date, YYYY-MM-DD")
    when.add_argument(
        "--since", type=date.fromisoformat, help="every closed date from YYYY-MM-DD on"
    )
    sub.add_argument(
        "--open",
        action="store_true",
        help="through today, still open (default: up to the latest closed date)",
    )
    sub.add_argument("--differs", action="store_true", help="only closed days beyond the tolerance")
    sub.add_argument(
        "--fresh",
        action="store_true",
        help="compute from the stored sales and payments now (also an open day), storing nothing",
    )
    sub.add_argument("--json", action="store_true", help="one JSON reconciliation per line")


def _handler(args: argparse.Namespace) -> int:
    _, loaded = load(args)
    check_outlet(loaded, args.outlet)
    try:
        query = ReconciliationQuery(
            outlet=args.outlet,
            date=args.date,
            since=args.since,
            open=args.open,
            differs=args.differs,
        )
    except ValidationError as err:
        raise UsageError(str(err)) from None

    async def find() -> list[StoredReconciliation]:
        store = open_store(loaded.config.store.url, base_dir=loaded.base_dir)
        await store.open()
        try:
            service = ReconciliationService(store, loaded, SystemClock())
            if args.outlet is not None and args.outlet not in {o.id for o in service.outlets()}:
                raise UsageError(
                    f"outlet {args.outlet!r} has no POS and payment connector to reconcile"
                )
            if args.fresh:
                return await service.fresh(query)
            return await service.find(query)
        finally:
            await store.close()

    found = asyncio.run(find())
    if args.json:
        for item in found:
            print(json.dumps(item.describe()))
        return 1 if any(item.state == "differs" for item in found) else 0
    if not found:
        print("no reconciliation stored for those days (the daemon makes one as a day closes;")
        print("--fresh computes one now from the stored sales and payments)")
        return 0
    zones = {o.id: ZoneInfo(o.timezone) for o in loaded.config.outlets}
    print("\n\n".join(show(item, zones[item.result.outlet]) for item in found))
    return 1 if any(item.state == "differs" for item in found) else 0


def rupiah(amount: Decimal) -> str:
    """`27500` → `27,500`, `-5000` → `-5,000` (exact: no rounding)."""
    return f"{amount:,}"


def show(item: StoredReconciliation, tz: ZoneInfo) -> str:
    """One outlet's day as text: the heading, the methods, fees, and what is unmatched."""
    r: Reconciliation = item.result
    revision = f"r{item.revision}" if item.revision else "not stored"
    verdict = "MATCHED" if r.status == "matched" else f"DIFFERS by {rupiah(r.difference)}"
    if r.status == "differs" and not item.differs:
        verdict += " (within tolerance)"
    if not item.closed:  # figures so far: the day still takes sales and payments
        verdict = f"OPEN, so far {verdict.lower()}"
    lines = [
        f"{r.outlet} {r.business_date} ({tz.key})  {verdict}  ({revision}; {r.sales} sales,"
        f" {r.refunds} refunds, {r.voids} voids; POS total {rupiah(r.pos_total)})"
    ]
    rows = [("METHOD", "POS", "PAYMENTS", "DIFFERENCE")]
    rows += [
        (c.method.value, rupiah(c.pos), rupiah(c.payments), rupiah(c.difference)) for c in r.methods
    ]
    compared = {c.method for c in r.methods}
    rows += [
        (f"{m.method.value} (not compared)", rupiah(m.total), "-", "-")
        for m in r.pos_by_method
        if m.method not in compared
    ]
    lines.append(table(rows))
    lines.append(
        f"payments: gross {rupiah(r.gross)}, fees {rupiah(r.fees)}, net {rupiah(r.net)};"
        f" {len(r.matched)} linked to sales; by status: "
        + (", ".join(f"{s.key} {s.count}" for s in r.payments_by_status) or "none")
    )
    for pair in r.matched:
        if pair.difference:
            lines.append(
                f"  amount differs  {pair.sale} {rupiah(pair.sale_amount)}"
                f" <- {pair.payment} {rupiah(pair.payment_amount)}"
                f" ({rupiah(pair.difference)})"
            )
    for sale in r.unmatched_sales:
        lines.append(
            f"  no payment      {sale.sale} {sale.method.value} {rupiah(sale.amount)}"
            f" at {sale.occurred_at.astimezone(tz):%H:%M}"
        )
    for payment in r.unmatched_payments:
        lines.append(
            f"  no sale         {payment.payment} ref {payment.reference}"
            f" {payment.channel or '-'} {rupiah(payment.amount)}"
        )
    return "\n".join(lines)
