"""CSV exports for the file-drop tests and the simulator's shape: Pawoon, Indonesian style."""

from __future__ import annotations

HEADER = "Date;Transaction ID;Total;Tax;Items\n"


def pawoon_rows(start: int, count: int, *, bad: set[int] = frozenset()) -> str:  # type: ignore[assignment]
    """`count` rows of sales PWN-<n>; rows whose index is in `bad` carry an unreadable total."""
    lines = []
    for n in range(start, start + count):
        total = "Rp 27.500,-" if n in bad else f"Rp {27 + n % 50}.500"
        lines.append(
            f"2026-11-26 {8 + n % 12:02d}:{n % 60:02d}:00;PWN-{n:06d};{total};Rp 2.500;Kopi x1\n"
        )
    return "".join(lines)


def pawoon_export(count: int, *, start: int = 0, bad: set[int] = frozenset()) -> bytes:  # type: ignore[assignment]
    """A whole Pawoon export with a header."""
    return (HEADER + pawoon_rows(start, count, bad=bad)).encode()
