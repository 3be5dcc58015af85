"""The demo survives its own restarts: the simulator's fake OAuth vendor keeps the tokens it
issued in the data folder, as a real vendor does, so a restarted `sambung run --simulate` keeps
polling Moka with the tokens it stored; a connection that is in `needs_reauth` when the daemon
starts is named in one warning with the command that fixes it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from sambung.testing.daemon import DaemonProcess, free_port

from .test_oauth_e2e import moka_config


def moka_state(daemon: DaemonProcess) -> dict[str, Any]:
    """Moka's poll connection as `sambung status --json` shows it ({} before its first run)."""
    for line in daemon.cli("status", "--json").stdout.splitlines():
        state = json.loads(line)
        if state.get("connector") == "moka" and "poll" in state.get("mode", ()):
            return dict(state)
    return {}


def wait_for(daemon: DaemonProcess, check: Any, seconds: float = 60.0) -> dict[str, Any]:
    """Poll `sambung status` until `check(state)` holds; returns that state."""
    deadline = time.monotonic() + seconds
    while True:
        state = moka_state(daemon)
        if check(state):
            return state
        assert time.monotonic() < deadline, (state, daemon.logs()[-4000:])
        time.sleep(0.5)


def fetched(state: dict[str, Any]) -> int:
    """Records the connection's polls fetched so far (0 before its first run)."""
    return int((state.get("poll") or {}).get("records_fetched", 0))


def connected_demo(tmp_path: Path) -> tuple[DaemonProcess, int]:
    """A demo daemon that connected Moka at the simulator's fake and polled records once."""
    config = moka_config(f"http://127.0.0.1:{free_port()}", free_port())
    daemon = DaemonProcess(tmp_path, config, args=("--simulate",)).start()
    state = wait_for(daemon, lambda s: s.get("state") == "ok" and fetched(s) > 0)
    daemon.terminate()
    return daemon, fetched(state)


def test_a_restarted_demo_keeps_polling_with_its_stored_tokens(tmp_path: Path) -> None:
    daemon, before = connected_demo(tmp_path)
    (state_file,) = tmp_path.glob("simulator-oauth-*.json")
    assert state_file.stat().st_mode & 0o077 == 0
    daemon.start()
    try:
        wait_for(daemon, lambda s: s.get("state") == "ok" and fetched(s) > before)
    finally:
        daemon.terminate()
    logs = daemon.logs()
    assert "InvalidGrant" not in logs and '"event": "connection.needs_reauth"' not in logs
    assert logs.count('"event": "simulator.connected_oauth"') == 1  # connected once, not again


def test_a_connection_left_in_needs_reauth_is_named_at_start_up(tmp_path: Path) -> None:
    daemon, _ = connected_demo(tmp_path)
    for state_file in tmp_path.glob("simulator-oauth-*.json"):
        state_file.unlink()  # the vendor forgot every token: the stored refresh is refused
    daemon.start()
    try:
        wait_for(daemon, lambda s: s.get("state") == "needs_reauth")
    finally:
        daemon.terminate()
    daemon.log_path.write_text("", encoding="utf-8")
    daemon.start()
    daemon.terminate()
    warnings = [
        json.loads(line)
        for line in daemon.logs().splitlines()
        if '"event": "connection.needs_reauth"' in line
    ]
    assert len(warnings) == 1, daemon.logs()
    assert warnings[0]["outlet"] == "kemang" and warnings[0]["connector"] == "moka"
    assert warnings[0]["fix"] == f"sambung connect -c {daemon.config_path} kemang moka"
    assert warnings[0]["level"] == "warning"
