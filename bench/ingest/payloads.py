"""Signed Pawoon `transaction.created` webhooks, generated ahead of the load run.

Every request carries its own `transaction_id`, 1-5 line items from a coffee-shop menu, an
optional item or order discount, sometimes a 5% service charge, 10% PB1 tax and a total rounded to
the nearest Rp 100, the way Indonesian tills round. One request in four writes its amounts as JSON
decimals (`25000.00`) rather than integers, which the daemon must read as exact `Decimal`s.

The requests are written one per line as `path<TAB>signature<TAB>body` for the wrk Lua script to
read in its `init`, so neither JSON encoding nor HMAC signing runs while the load is measured.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from sambung.auth.signing import sign_hex
from sambung.testing.fakes import MENU, json_bytes

WEBHOOK_PATH = "/api/v1/integrations/webhooks/pawoon/{outlet}"

PAYMENT_METHODS = ("QRIS", "Cash", "GoPay", "OVO", "ShopeePay", "Debit BCA", "Kartu Kredit")
TAX_RATE = Decimal("0.10")  # PB1, the regional restaurant tax
SERVICE_RATE = Decimal("0.05")
CENTS = Decimal("0.01")


@dataclass(frozen=True)
class Outlet:
    """One outlet of the benchmark's config: its id and its Pawoon webhook secret."""

    id: str
    name: str
    secret: str


@dataclass(frozen=True)
class SignedRequest:
    """One webhook ready to send: its path, its signature header value and its raw body."""

    path: str
    signature: str
    body: bytes

    def line(self) -> str:
        """The request as one `path<TAB>signature<TAB>body` line (JSON never holds a raw tab)."""
        return f"{self.path}\t{self.signature}\t{self.body.decode()}\n"


def transaction_payload(
    rng: random.Random, transaction_id: str, at: datetime, decimals: bool
) -> dict[str, object]:
    """A realistic `transaction.created` body; amounts are ints, or 2-place Decimals."""

    def amount(value: Decimal) -> int | Decimal:
        return value.quantize(CENTS) if decimals else int(value)

    items: list[dict[str, object]] = []
    subtotal = Decimal(0)
    for item in rng.sample(MENU, rng.randint(1, 5)):
        sku, name, price = item.sku, item.name, int(item.price)
        qty = rng.choices((1, 2, 3), weights=(70, 22, 8))[0]
        gross = Decimal(price * qty)
        line: dict[str, object] = {
            "sku": sku,
            "name": name,
            "qty": qty,
            "price": amount(Decimal(price)),
        }
        discount = Decimal(0)
        if rng.random() < 0.1:
            discount = gross * Decimal("0.2")
            line["discount"] = amount(discount)
        items.append(line)
        subtotal += gross - discount

    order_discount = Decimal(rng.choice((0, 0, 0, 0, 5_000, 10_000)))
    order_discount = min(order_discount, subtotal)
    service = (subtotal - order_discount) * SERVICE_RATE if rng.random() < 0.3 else Decimal(0)
    tax = ((subtotal - order_discount + service) * TAX_RATE).quantize(Decimal(1), ROUND_HALF_UP)
    due = subtotal - order_discount + service + tax
    total = (due / 100).quantize(Decimal(1), ROUND_HALF_UP) * 100  # the till's rounding

    data: dict[str, object] = {
        "transaction_id": transaction_id,
        "total": amount(total),
        "tax": amount(tax),
        "timestamp": at.strftime("%Y-%m-%d %H:%M:%S"),
        "payment_method": rng.choice(PAYMENT_METHODS),
        "items": items,
    }
    if order_discount:
        data["total_discount"] = amount(order_discount)
    if service:
        data["service_charge"] = amount(service)
    return {"event_type": "transaction.created", "data": data}


def generate(
    count: int, outlets: Sequence[Outlet], *, id_prefix: str, seed: int = 2026
) -> Iterator[SignedRequest]:
    """`count` signed requests with unique transaction ids, spread over the outlets."""
    rng = random.Random(f"{seed}:{id_prefix}")
    opened = datetime(2026, 11, 26, 7, 0, 0)
    for index in range(count):
        outlet = outlets[index % len(outlets)]
        at = opened + timedelta(seconds=index * 7 % (15 * 3600))  # 07:00-22:00 local time
        payload = transaction_payload(rng, f"{id_prefix}{index:08d}", at, rng.random() < 0.25)
        body = json_bytes(payload)
        yield SignedRequest(
            WEBHOOK_PATH.format(outlet=outlet.id), sign_hex(outlet.secret, body), body
        )


def write_requests(path: Path, count: int, outlets: Sequence[Outlet], *, id_prefix: str) -> int:
    """Write `count` requests to `path`, one per line; returns the file's size in bytes."""
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for request in generate(count, outlets, id_prefix=id_prefix):
            out.write(request.line())
    return path.stat().st_size
