"""The shifted-clock run that `make test` ends with really moves the clock, and so catches a test
that holds only until some date."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

RUNNER = Path(__file__).with_name("shifted_clock.py")

# Inside a shifted run the test cannot know the real date to compare with; `make test` runs this
# file unshifted, so it always runs there.
pytestmark = pytest.mark.skipif(
    "FAKETIME" in os.environ, reason="already under a shifted clock: needs the real one"
)

# A test that was true on the day it was written: "now" is before a date a month ahead.
TIME_BOMB = """
from datetime import UTC, datetime, timedelta
WRITTEN = datetime.fromisoformat("{written}")

def test_holds_only_until_next_month():
    assert datetime.now(UTC) < WRITTEN + timedelta(days=30)
"""

# The daemons a test starts inherit the shift too: a child process sees the same year.
CHILD_SEES_IT = """
import subprocess, sys
from datetime import UTC, datetime

def test_a_child_process_is_shifted_too():
    year = subprocess.run(
        [sys.executable, "-c", "import datetime; print(datetime.date.today().year)"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert int(year) == {expected}
"""


def run(folder: Path, offset: str, source: str) -> subprocess.CompletedProcess[str]:
    test = folder / "test_probe.py"
    test.write_text(source, encoding="utf-8")
    return subprocess.run(
        [sys.executable, str(RUNNER), offset, "-q", "-p", "no:cacheprovider", str(test)],
        capture_output=True,
        text=True,
        cwd=folder,
        timeout=120,
    )


def test_a_time_bomb_passes_today_and_fails_a_year_ahead(tmp_path: Path) -> None:
    bomb = TIME_BOMB.format(written=datetime.now(UTC).isoformat())
    (tmp_path / "test_probe.py").write_text(bomb, encoding="utf-8")
    today = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_probe.py"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert today.returncode == 0, today.stdout

    ahead = run(tmp_path, "+365d", bomb)
    assert ahead.returncode == 1, ahead.stdout
    assert "1 failed" in ahead.stdout


def test_the_processes_a_test_starts_are_shifted_as_well(tmp_path: Path) -> None:
    expected = datetime.now(UTC).year - 1
    behind = run(tmp_path, "-365d", CHILD_SEES_IT.format(expected=expected))
    # 365 days back from early January can land two calendar years back (a leap year between).
    if behind.returncode != 0:
        retry = CHILD_SEES_IT.format(expected=expected - 1)
        behind = run(tmp_path, "-365d", retry)
    assert behind.returncode == 0, behind.stdout


def test_the_runner_refuses_an_offset_it_cannot_read(tmp_path: Path) -> None:
    refused = subprocess.run(
        [sys.executable, str(RUNNER), "next-year"], capture_output=True, text=True, timeout=60
    )
    assert refused.returncode != 0
    assert "usage" in refused.stderr
