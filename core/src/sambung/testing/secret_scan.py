"""A pytest plugin that fails the run if a secret reached a log line, anywhere in the suite.

Secrets are collected while the suite runs: tokens the fake vendors issue, client secrets they
check, the YAML secrets and `SAMBUNG_SECRET_KEY` of every daemon the test kit starts, and the
key files those daemons create. Logs are everything pytest captured from each test (structlog
prints there) and the log file of every daemon process. At the end of the session every log is
searched for every secret; a hit fails the run, naming the secret only by its first characters.

Enabled for this repository with `-p sambung.testing.secret_scan` in pytest's addopts.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # Only for the hooks' signatures: the daemon imports this module (through the fake
    # vendors its simulator serves), and importing pytest would add half a second to every
    # start.
    import pytest

# Shorter values (`k`, `demo`) are too common to tell a leak from a coincidence.
MIN_LENGTH = 8

SECRETS: set[str] = set()
SECRET_FILES: list[Path] = []
LOG_FILES: list[Path] = []
_captured: list[tuple[str, str]] = []


def remember(*values: str | None) -> None:
    """Treat these values as secrets: none may appear in a log line."""
    SECRETS.update(v for v in values if v and len(v) >= MIN_LENGTH)


def remember_file(path: Path) -> None:
    """A file whose content (read at the end) is a secret, such as a daemon's key file."""
    SECRET_FILES.append(path)


def watch_log(path: Path) -> None:
    """A log file to scan at the end (a daemon process's)."""
    LOG_FILES.append(path)


def find_leaks(text: str, secrets: Iterable[str]) -> list[str]:
    """The secrets that occur in `text`."""
    return sorted(s for s in secrets if s in text)


def shown(secret: str) -> str:
    """How a leaked secret is named in the report: never whole."""
    return f"{secret[:3]}…({len(secret)} chars)"


def _all_secrets() -> set[str]:
    found = set(SECRETS)
    for path in SECRET_FILES:
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError:
            continue
        if len(value) >= MIN_LENGTH:
            found.add(value)
    return found


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Keep what each test printed (its log lines) for the final scan."""
    for title, content in report.sections:
        if title.startswith("Captured") and content:
            _captured.append((f"{report.nodeid} ({title})", content))


def scan() -> list[tuple[str, str]]:
    """(where, secret shown) of every leak in the captured output and daemon logs: each secret
    looked for as it is and as an echo may encode it (URL-encoded, JSON-escaped, base64)."""
    from sambung.redaction import forms

    secrets = {form for secret in _all_secrets() for form in forms(secret)}
    leaks: list[tuple[str, str]] = []
    for where, text in _captured:
        leaks.extend((where, shown(s)) for s in find_leaks(text, secrets))
    for path in LOG_FILES:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        leaks.extend((str(path), shown(s)) for s in find_leaks(text, secrets))
    return leaks


class _FromWorkers:
    """Under pytest-xdist, the secrets and daemon logs each worker learnt, sent to the
    controller: it scans everything once, with every test's captured output, which xdist
    forwards to it in the reports."""

    @staticmethod
    def pytest_testnodedown(node: Any, error: object) -> None:
        """Take a finished worker's secrets and log files into the final scan."""
        output = getattr(node, "workeroutput", {})
        SECRETS.update(output.get("sambung_secrets", ()))
        LOG_FILES.extend(Path(path) for path in output.get("sambung_logs", ()))


def pytest_configure(config: pytest.Config) -> None:
    """Listen for workers' findings when the suite runs under pytest-xdist."""
    # Registered only then: the hook is xdist's, unknown to a pytest without it.
    if config.pluginmanager.hasplugin("xdist") and not hasattr(config, "workerinput"):
        config.pluginmanager.register(_FromWorkers(), "sambung-secret-scan-workers")


def pytest_sessionfinish(session: pytest.Session, exitstatus: Any) -> None:
    """Fail the run if any secret reached a log."""
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        # An xdist worker: the controller scans, once, with what every worker found.
        output["sambung_secrets"] = sorted(_all_secrets())
        output["sambung_logs"] = [str(path) for path in LOG_FILES]
        return
    leaks = scan()
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if leaks:
        import pytest

        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if reporter is None:
        return
    if leaks:
        reporter.write_sep("=", "SECRET LEAK: secrets found in log output", red=True)
        for where, secret in leaks:
            reporter.write_line(f"{where}: {secret}")
    else:
        reporter.write_sep(
            "-",
            f"secret scan: {len(_all_secrets())} secrets, {len(_captured)} captured outputs and"
            f" {len(LOG_FILES)} daemon logs, no leak",
        )
