"""Building blocks for fake vendors: a realistic menu and deterministic baskets of it.

Plugins use these to make example webhooks (the simulator) and recorded-looking payloads; the
same sequence number always gives the same basket, so tests and demos are reproducible.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal

from ..parse import dumps

# The kit's name for `sambung.parse.dumps`, which fake vendors and tests have always used.
json_bytes = dumps


@dataclass(frozen=True)
class MenuItem:
    """Something an Indonesian coffee shop sells."""

    sku: str
    name: str
    price: Decimal


MENU: tuple[MenuItem, ...] = (
    MenuItem("KOP-001", "Es Kopi Susu Gula Aren", Decimal(25000)),
    MenuItem("KOP-002", "Kopi Tubruk", Decimal(15000)),
    MenuItem("KOP-003", "Americano", Decimal(22000)),
    MenuItem("KOP-004", "Cafe Latte", Decimal(28000)),
    MenuItem("TEH-001", "Es Teh Manis", Decimal(8000)),
    MenuItem("TEH-002", "Teh Tarik", Decimal(18000)),
    MenuItem("MKN-001", "Nasi Goreng Kampung", Decimal(32000)),
    MenuItem("MKN-002", "Mie Goreng Jawa", Decimal(30000)),
    MenuItem("MKN-003", "Roti Bakar Cokelat Keju", Decimal(21000)),
    MenuItem("MKN-004", "Pisang Goreng", Decimal(16500)),
    MenuItem("MKN-005", "Croissant Butter", Decimal(27500)),
)

PAYMENT_LABELS = ("Tunai", "QRIS", "GoPay", "OVO", "Debit BCA", "ShopeePay", "Kartu Kredit")

# PPN as Indonesian cafés charge it (11%), and the service charge many add (5%).
TAX_RATE = Decimal("0.11")
SERVICE_RATE = Decimal("0.05")


@dataclass(frozen=True)
class Line:
    """One line of a basket."""

    item: MenuItem
    quantity: int

    @property
    def total(self) -> Decimal:
        """Quantity times price."""
        return self.item.price * self.quantity


@dataclass(frozen=True)
class Basket:
    """A deterministic sale: lines, tax and how it was paid."""

    lines: tuple[Line, ...]
    payment_label: str
    with_service: bool

    @property
    def subtotal(self) -> Decimal:
        """Sum of the lines."""
        return sum((line.total for line in self.lines), Decimal(0))

    @property
    def service_charge(self) -> Decimal:
        """Service charge, when the outlet adds one."""
        return (
            (self.subtotal * SERVICE_RATE).quantize(Decimal(1)) if self.with_service else Decimal(0)
        )

    @property
    def tax(self) -> Decimal:
        """PPN on subtotal plus service, to the Rupiah."""
        return ((self.subtotal + self.service_charge) * TAX_RATE).quantize(Decimal(1))

    @property
    def total(self) -> Decimal:
        """What the customer pays, rounded up to Rp 100 as tills do."""
        exact = self.subtotal + self.service_charge + self.tax
        return -(-exact // 100) * 100


def basket(sequence: int) -> Basket:
    """The basket for `sequence`: always the same for the same number."""
    rng = random.Random(sequence)
    chosen = rng.sample(MENU, k=rng.randint(1, 4))
    lines = tuple(Line(item, rng.randint(1, 3)) for item in chosen)
    return Basket(lines, rng.choice(PAYMENT_LABELS), with_service=rng.random() < 0.3)
