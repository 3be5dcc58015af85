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


# One row per cell that once stopped an importer (issue 13), each of which must end as that
# row's error: a date no zone arithmetic survives, a 29-digit total, a 200 KB cell, a formula
# cell in a rejected row (the errors file must neutralise it), a NUL in an id.
HOSTILE_ROWS = (
    "0001-01-01 00:00:00;PWN-H-DATE;Rp 27.500;Rp 2.500;Kopi x1\n",
    "2026-11-26 10:00:00;PWN-H-TOTAL;" + "9" * 29 + ";Rp 2.500;Kopi x1\n",
    "2026-11-26 10:00:00;PWN-H-BIG;Rp 27.500;Rp 2.500;" + "x" * 200_000 + "\n",
    '2026-11-26 10:00:00;=HYPERLINK("http://example.invalid");Rp 27.500,-;Rp 2.500;Kopi x1\n',
    "2026-11-26 10:00:00;PWN-\x00-NUL;Rp 27.500;Rp 2.500;Kopi x1\n",
)


def pawoon_hostile_export(count: int, *, start: int = 0) -> bytes:
    """A Pawoon export of `count` good rows with the `HOSTILE_ROWS` in their middle."""
    middle = count // 2
    rows = pawoon_rows(start, middle) + "".join(HOSTILE_ROWS)
    return (HEADER + rows + pawoon_rows(start + middle, count - middle)).encode()
