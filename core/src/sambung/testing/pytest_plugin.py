"""pytest fixtures from sambung's test kit, loaded automatically wherever sambung is installed."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from .daemon import DaemonProcess


@pytest.fixture
def sambung_daemon(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """Start `sambung run` as a real process: `sambung_daemon(config_dict, env=...)`.

    Each call gets a free port, the YAML written to a temporary folder and a SQLite file beside
    it; every process still running at the end of the test is killed.
    """
    started: list[DaemonProcess] = []

    def start(
        config: Mapping[str, Any],
        *,
        env: Mapping[str, str] | None = None,
        args: tuple[str, ...] = (),
    ) -> DaemonProcess:
        workdir = tmp_path / f"daemon{len(started)}"
        workdir.mkdir()
        process = DaemonProcess(workdir, config, env=env, args=args)
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.kill()
