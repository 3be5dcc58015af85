"""The README's commands work as written: every ```sh block runs, in order, against a daemon
started the way `make run` starts it, in a temporary folder that holds a copy of
config.example.yaml (and links to the rest of the checkout).

The blocks run one after another as in one terminal (what a block exports, the next sees), in a
shell without the Makefile's demo variables, so a block that needs one must say so. A block
preceded by `<!-- not run: REASON -->` is skipped, visibly; each `<!-- expect: TEXT -->` before
a block is text its output must contain.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"
# What config.example.yaml and the simulator listen on; the README's commands name them.
DEMO_PORTS = (8080, 8081, 8091, 8092, 8093, 8094, 9090)
MARKER = re.compile(r"<!--\s*(not run|expect):\s*(.*?)\s*-->")


@dataclass
class Block:
    """One ```sh block of the README and the markers right above it."""

    line: int
    code: str
    expects: list[str] = field(default_factory=list)
    not_run: str | None = None


def readme_blocks(text: str) -> list[Block]:
    """Every ```sh block, with the `not run` / `expect` comments on the lines just before it."""
    lines = text.splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        if lines[index].strip() != "```sh":
            index += 1
            continue
        block = Block(line=index + 1, code="")
        above = index - 1
        while above >= 0 and (match := MARKER.fullmatch(lines[above].strip())):
            if match.group(1) == "not run":
                block.not_run = match.group(2)
            else:
                block.expects.insert(0, match.group(2))
            above -= 1
        end = lines.index("```", index + 1)
        block.code = "\n".join(lines[index + 1 : end]) + "\n"
        found.append(block)
        index = end + 1
    return found


def makefile_exports() -> dict[str, str]:
    """The demo variables the Makefile exports to `make run` (`export NAME ?= value`)."""
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return dict(re.findall(r"^export (\w+) \?= (.+)$", text, re.MULTILINE))


def test_every_block_runs_or_says_why_not() -> None:
    blocks = readme_blocks(README.read_text(encoding="utf-8"))
    assert len(blocks) > 10
    run = [b for b in blocks if b.not_run is None]
    assert run, "no block runs"
    for block in blocks:
        assert block.not_run is None or block.not_run.strip(), f"README.md:{block.line}"
    for block in run:
        # One way to call sambung in blocks that run: the workspace's own command.
        for line in block.code.splitlines():
            assert not re.match(r"\s*sambung\s", line), f"README.md:{block.line}: bare sambung"
        assert "-c sambung.yaml" not in block.code, f"README.md:{block.line}"


def _port_taken(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _get(url: str, token: str) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except OSError as err:
        return 0, str(err)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Path]:
    """`make run` in a folder of its own; yields the folder once the demo is under way."""
    taken = [port for port in DEMO_PORTS if _port_taken(port)]
    if taken:
        pytest.fail(f"the demo's ports are taken (is `make run` going?): {taken}")
    for entry in ROOT.iterdir():
        if entry.name not in ("data", "config.example.yaml", ".git"):
            (tmp_path / entry.name).symlink_to(entry)
    shutil.copy(ROOT / "config.example.yaml", tmp_path / "config.example.yaml")
    exports = makefile_exports()
    env = {**os.environ, **exports}
    log = (tmp_path / "make-run.log").open("wb")
    process = subprocess.Popen(
        ["make", "--no-print-directory", "run"],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        token = exports["SAMBUNG_ADMIN_TOKEN"]
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, (tmp_path / "make-run.log").read_text()
            status, body = _get("http://127.0.0.1:8081/api/v1/status", token)
            if status == 200 and _demo_under_way(json.loads(body)):
                break
            assert time.monotonic() < deadline, (body, (tmp_path / "make-run.log").read_text())
            time.sleep(0.5)
        yield tmp_path
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def _demo_under_way(status: dict[str, object]) -> bool:
    """Moka connected through OAuth by the simulator and polled."""
    connections = status.get("connections")
    assert isinstance(connections, list)
    for connection in connections:
        poll = connection.get("poll") or {}
        if connection.get("connector") == "moka" and poll.get("state") == "ok":
            return bool(poll.get("records_fetched"))
    return False


def test_the_readme_runs_against_make_run(demo: Path) -> None:
    exports = makefile_exports()
    env = {k: v for k, v in os.environ.items() if k not in exports}
    state = demo / "shell.env"
    failures: list[str] = []
    for block in readme_blocks(README.read_text(encoding="utf-8")):
        if block.not_run is not None:
            print(f"README.md:{block.line}: not run: {block.not_run}")
            continue
        script = f"set -e -o pipefail\n{block.code}\nenv -0 > {state}\n"
        result = subprocess.run(
            ["bash", "-c", script],
            cwd=demo,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            failures.append(f"README.md:{block.line}: exit {result.returncode}\n{result.stderr}")
            continue
        env = dict(entry.split("=", 1) for entry in state.read_text().split("\0") if "=" in entry)
        missing = [text for text in block.expects if text not in result.stdout]
        if missing:
            failures.append(f"README.md:{block.line}: no {missing} in\n{result.stdout[-3000:]}")
    assert not failures, "\n\n".join(failures)
