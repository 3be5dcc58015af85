"""The suite's secret scan can fail: a planted secret in a log line fails a pytest run.

The scan itself (`sambung.testing.secret_scan`, enabled in pyproject's addopts) runs at the end
of every session over everything the tests logged and every daemon's log file.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sambung.testing.secret_scan import find_leaks, shown

INNER = """
import structlog
from sambung.testing.secret_scan import remember

def test_logs_a_token():
    remember("planted-token-{suffix}")
    structlog.get_logger().info("vendor.answered", body="access=planted-token-{suffix}")
"""


def run_inner(tmp_path: Path, suffix: str, *, leak: bool) -> subprocess.CompletedProcess[str]:
    """A separate pytest session with the scan enabled, over one test that logs a line."""
    source = INNER.format(suffix=suffix)
    if not leak:
        source = source.replace('body="access=planted', 'body="access=other')
    return run_source(tmp_path, source)


def run_source(tmp_path: Path, source: str, *options: str) -> subprocess.CompletedProcess[str]:
    """A separate pytest session with the scan enabled, over the test module `source`."""
    (tmp_path / "test_inner.py").write_text(source, encoding="utf-8")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "sambung.testing.secret_scan",
            "-p",
            "no:cacheprovider",
            *options,
            "test_inner.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_planted_secret_in_a_log_line_fails_the_run(tmp_path: Path) -> None:
    result = run_inner(tmp_path, "3f9c2a", leak=True)

    assert result.returncode == 1, result.stdout
    assert "SECRET LEAK" in result.stdout
    assert "1 passed" in result.stdout, "the test itself passed: the scan failed the run"
    assert "planted-token-3f9c2a" not in result.stdout, "the report never prints the secret"


def test_a_secret_a_worker_learnt_and_logged_fails_a_parallel_run(tmp_path: Path) -> None:
    # `make test` runs the suite on pytest-xdist workers: the secret is remembered in a worker,
    # the log line is captured there, and the controller must still put the two together.
    source = INNER.format(suffix="a1b2c3") + INNER.replace("test_logs_a_token", "test_other")
    result = run_source(tmp_path, source.format(suffix="d4e5f6"), "-n", "2")

    assert result.returncode == 1, result.stdout
    assert "SECRET LEAK" in result.stdout
    assert "2 passed" in result.stdout
    assert "planted-token-a1b2c3" not in result.stdout


def test_a_run_without_leaks_passes(tmp_path: Path) -> None:
    result = run_inner(tmp_path, "77b1e0", leak=False)

    assert result.returncode == 0, result.stdout
    assert "no leak" in result.stdout


def test_find_leaks_and_how_a_leak_is_shown() -> None:
    assert find_leaks("a=abcdefgh1234 b", {"abcdefgh1234", "zzzzzzzzzz"}) == ["abcdefgh1234"]
    assert shown("abcdefgh1234") == "abc…(12 chars)"


def test_a_secret_leaked_url_encoded_or_as_basic_auth_fails_the_run(tmp_path: Path) -> None:
    for n, encoding in enumerate(("quote", "basic")):
        folder = tmp_path / encoding
        folder.mkdir()
        body = (
            'urllib.parse.quote("planted/token+{suffix}", safe="")'
            if encoding == "quote"
            else 'base64.b64encode(b"planted/token+{suffix}:").decode()'
        )
        source = INNER.replace(
            '"planted-token-{suffix}")\n', '"planted/token+{suffix}")\n'
        ).replace('body="access=planted-token-{suffix}"', f"body={body}")
        source = "import base64, urllib.parse\n" + source.format(suffix=f"e{n}c0d3")
        result = run_source(folder, source)
        assert result.returncode == 1, (encoding, result.stdout)
        assert "SECRET LEAK" in result.stdout, encoding
