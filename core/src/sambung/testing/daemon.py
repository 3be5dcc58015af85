"""Run `sambung run` as a real process for end-to-end tests, and talk to it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from .secret_scan import remember, remember_file, watch_log


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class HttpClient:
    """Blocking HTTP calls against one base URL, answering (status, JSON or text)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def post(
        self, path: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> tuple[int, Any]:
        """POST raw bytes; returns (status, parsed JSON body or text)."""
        request = urllib.request.Request(
            self.url + path,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        return _send(request)

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> tuple[int, Any]:
        """GET; returns (status, parsed JSON body or text)."""
        return _send(urllib.request.Request(self.url + path, headers=dict(headers or {})))


class DaemonProcess(HttpClient):
    """A `sambung run` child process with its own YAML, SQLite file and log file."""

    def __init__(
        self,
        workdir: Path,
        config: Mapping[str, Any],
        *,
        env: Mapping[str, str] | None = None,
        args: tuple[str, ...] = (),
    ) -> None:
        self.workdir = workdir
        self.port = free_port()
        super().__init__(f"http://127.0.0.1:{self.port}")
        document = dict(config)
        server = dict(document.get("server") or {})
        server["public"] = {"host": "127.0.0.1", **(server.get("public") or {}), "port": self.port}
        document["server"] = server
        document.setdefault("store", {"url": "sqlite:///./sambung.db"})
        document.setdefault("log", {"level": "info", "format": "json"})
        self.config_path = workdir / "sambung.yaml"
        self.config_path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        self.log_path = workdir / "daemon.log"
        self.env = {**os.environ, **(env or {})}
        self.args = args
        # Everything secret this daemon knows, for the suite's secret scan.
        remember(*_secret_values(document), (env or {}).get("SAMBUNG_SECRET_KEY"))
        remember_file(workdir / "secret.key")
        remember_file(workdir / "data" / "secret.key")
        watch_log(self.log_path)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> DaemonProcess:
        """Start the process and wait until `/healthz` answers."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sambung", "run", "-c", str(self.config_path), *self.args],
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sambung exited with {self.process.returncode}:\n{self.logs()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.05)
        self.kill()
        raise TimeoutError(f"sambung did not become healthy in {timeout}s:\n{self.logs()}")

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait; returns the exit status."""
        return self._signal(signal.SIGTERM, timeout)

    def kill(self) -> int:
        """SIGKILL: the crash a power cut or the OOM killer would cause."""
        return self._signal(signal.SIGKILL, 10.0)

    def pause(self) -> None:
        """SIGSTOP: the process freezes where it is (a VM paused, a laptop lid closed)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT: a paused process runs on from where it froze, unaware of the pause."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def _signal(self, signum: int, timeout: float) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self.process = None

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run `sambung ARGS -c <this daemon's YAML>` with its environment, in its folder."""
        return subprocess.run(
            [sys.executable, "-m", "sambung", *args, "-c", str(self.config_path)],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.workdir,
            check=False,
        )

    def logs(self) -> str:
        """Everything the process wrote so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")


_SECRET_KEYS = ("secret", "token", "password", "api_key")


def _secret_values(node: Any) -> list[str]:
    """String values under secret-looking keys of a YAML-shaped document."""
    found: list[str] = []
    if isinstance(node, Mapping):
        for key, value in node.items():
            if any(part in str(key).lower() for part in _SECRET_KEYS):
                values = value if isinstance(value, list) else [value]
                found.extend(str(v) for v in values if isinstance(v, str))
            else:
                found.extend(_secret_values(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_secret_values(item))
    return found


def _send(request: urllib.request.Request) -> tuple[int, Any]:
    """Send, and read the answer whatever its status."""
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")
