"""Run pytest with the wall clock moved: `python tests/shifted_clock.py +365d [pytest args]`.

A test written against a fixed date passes on the day it is written and fails once the calendar
passes that date. Run with the clock a year ahead (and a year back), such a test fails the day it
is written instead. The shift comes from libfaketime, preloaded into the pytest process and so
into every `sambung run` it starts; the monotonic clock is left alone, so timeouts and event
loops run at real speed. PostgreSQL's own clock is not moved: a test that compares an instant of
ours with the server's `now()` fails here, as it should.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path

OFFSET = re.compile(r"[+-]\d+[dhms]")


def library() -> Path:
    """The libfaketime shared object the `libfaketime` package built from its vendored source."""
    spec = importlib.util.find_spec("libfaketime")
    if spec is None or spec.origin is None:
        raise SystemExit("libfaketime is not installed: run `make test`, which syncs .venv")
    found = Path(spec.origin).parent / "vendor" / "libfaketime" / "src" / "libfaketime.so.1"
    if not found.is_file():
        raise SystemExit(f"libfaketime's library is missing at {found}")
    return found


def main(argv: list[str]) -> int:
    """Exec pytest under the shifted clock; pytest's exit status is this one's."""
    if not argv or not OFFSET.fullmatch(argv[0]):
        raise SystemExit("usage: shifted_clock.py +365d|-365d|+12h… [pytest arguments]")
    offset, rest = argv[0], argv[1:]
    env = dict(os.environ)
    preload = " ".join(filter(None, [str(library()), env.get("LD_PRELOAD", "")]))
    env.update(
        LD_PRELOAD=preload,
        FAKETIME=offset,
        # Both spellings: upstream libfaketime reads the first, the package's build the second.
        FAKETIME_DONT_FAKE_MONOTONIC="1",
        DONT_FAKE_MONOTONIC="1",
    )
    print(f"--- pytest with the wall clock moved {offset} ---", flush=True)
    os.execve(sys.executable, [sys.executable, "-m", "pytest", *rest], env)
    return 0  # not reached: execve replaces this process


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
