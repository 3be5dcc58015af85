"""Running as a service: the shipped systemd unit verifies, `sambung run` reports readiness
and shutdown over `NOTIFY_SOCKET`, and SIGHUP reopens the log file that logrotate moved."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sambung.testing.daemon import DaemonProcess

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "deploy" / "systemd" / "sambung.service"
ENV_EXAMPLE = REPO / "deploy" / "systemd" / "sambung.env.example"
CONFIG = {"outlets": [{"id": "kemang", "name": "Kemang"}]}


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def test_the_unit_is_hardened_and_runs_sambung_as_a_notify_service() -> None:
    settings = unit_settings()
    assert settings["Type"] == ["notify"] and settings["Restart"] == ["on-failure"]
    assert settings["ExecStart"] == ["/opt/sambung/bin/sambung run -c /etc/sambung/sambung.yaml"]
    assert settings["EnvironmentFile"] == ["/etc/sambung/sambung.env"]
    for key, value in {
        "User": "sambung",
        "StateDirectory": "sambung",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "NoNewPrivileges": "yes",
    }.items():
        assert settings[key] == [value], key
    assert set(settings["RestrictAddressFamilies"][0].split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert "WatchdogSec" in settings  # the daemon pings (sambung.runtime.systemd.Notifier.watchdog)
    assert "PAWOON_SECRET=" in ENV_EXAMPLE.read_text()


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)
def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    # verify checks that ExecStart exists: point it at this environment's `sambung`.
    sambung = Path(sys.executable).parent / "sambung"
    unit = tmp_path / "sambung.service"
    unit.write_text(UNIT.read_text().replace("/opt/sambung/bin/sambung", str(sambung)))
    verified = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stderr
    assert "sambung.service" not in verified.stderr, verified.stderr


def test_run_tells_systemd_when_it_is_ready_and_when_it_stops(tmp_path: Path) -> None:
    # Logging to a file named in the YAML (relative: from its folder), too.
    config = {**CONFIG, "log": {"level": "info", "format": "auto", "file": "sambung.log"}}
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "300000"}
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(env["NOTIFY_SOCKET"])
        listener.settimeout(20)
        daemon = DaemonProcess(tmp_path, config, env=env)
        daemon.start()
        try:
            messages = [datagram(listener)]
            while not any("WATCHDOG" in m for m in messages):
                messages.append(datagram(listener))
        finally:
            daemon.terminate()
        while "STOPPING" not in messages[-1]:
            messages.append(datagram(listener))
    ready = messages[0]
    assert ready["READY"] == "1" and ready["STATUS"].startswith(f"listening on {daemon.url}")
    assert "1 outlet(s)" in ready["STATUS"]
    assert {"WATCHDOG": "1"} in messages[1:]
    assert messages[-1] == {"STOPPING": "1", "STATUS": "draining"}
    assert '"event": "daemon.stopped"' in (tmp_path / "sambung.log").read_text()


def datagram(listener: socket.socket) -> dict[str, str]:
    """One sd_notify message as its KEY=value fields."""
    lines = listener.recv(4096).decode().splitlines()
    return dict(line.split("=", 1) for line in lines)


def wait_for_text(path: Path, text: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and text in path.read_text()):
        assert time.monotonic() < deadline, f"{text!r} never appeared in {path}"
        time.sleep(0.05)


def test_sighup_reopens_the_log_file(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "sambung.log"
    daemon = DaemonProcess(tmp_path, CONFIG, args=("--log-file", str(log_file))).start()
    try:
        wait_for_text(log_file, '"daemon.started"')
        rotated = log_file.with_name("sambung.log.1")
        log_file.rename(rotated)  # what logrotate does
        assert daemon.process is not None
        daemon.process.send_signal(signal.SIGHUP)
        wait_for_text(log_file, '"config.reloaded"')
    finally:
        daemon.terminate()
    assert '"daemon.stopped"' in log_file.read_text()
    assert "config.reloaded" not in rotated.read_text()
    assert "daemon.started" in rotated.read_text()
    assert "daemon.started" not in daemon.logs()  # stderr no longer carries the log
