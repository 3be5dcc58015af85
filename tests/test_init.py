"""`sambung init` writes a config that `sambung check` accepts once its env file is filled in,
from flags or from answers on stdin, and never overwrites a file unless told to."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest


def sambung(
    *args: str, cwd: Path, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the CLI in `cwd`."""
    return subprocess.run(
        [sys.executable, "-m", "sambung", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        check=False,
    )


def filled_env(env_file: Path) -> dict[str, str]:
    """The env file's variables, each empty one given a test value."""
    values: dict[str, str] = {}
    for line in env_file.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value or f"test-value-for-{name.lower()}"
    return values


def checked(folder: Path) -> subprocess.CompletedProcess[str]:
    """`sambung check` on the written config, with its env file filled in."""
    env_file = folder / "sambung.env"
    assert env_file.stat().st_mode & 0o777 == 0o600
    result = sambung("check", "-c", "sambung.yaml", cwd=folder, env=filled_env(env_file))
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.mark.parametrize(
    ("connectors", "expected"),
    [
        (["kemang:pawoon:webhook"], ["pawoon: webhook"]),
        (["kemang:pawoon:webhook+poll+file-drop"], ["pawoon: file-drop, poll, webhook"]),
        (["kemang:moka:poll", "kemang:qasir"], ["moka: poll", "qasir: poll"]),
        (["kemang:moka:webhook,file-drop", "makassar:olsera"], ["moka: file-drop, webhook"]),
        (["makassar:xendit:webhook+poll", "makassar:midtrans:poll"], ["xendit: poll, webhook"]),
        (["makassar:midtrans"], ["midtrans: webhook"]),
        ([], []),
    ],
)
def test_init_from_flags_writes_a_config_check_accepts(
    tmp_path: Path, connectors: list[str], expected: list[str]
) -> None:
    flags = [f"--connector={c}" for c in connectors]
    result = sambung(
        "init",
        "--non-interactive",
        "--outlet",
        "kemang:WIB",
        "--outlet",
        "makassar:WITA",
        "--outlet",
        "jayapura:Asia/Jayapura",
        *flags,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "sambung.yaml").read_text(encoding="utf-8")
    env = (tmp_path / "sambung.env").read_text(encoding="utf-8")
    # Every secret is a placeholder the env file lists with a comment; none is in the YAML.
    values = "\n".join(line.partition("#")[0] for line in text.splitlines())
    placeholders = re.findall(r"\$\{([A-Z0-9_]+)\}", values)
    assert "SAMBUNG_ADMIN_TOKEN" in placeholders
    for name in placeholders:
        assert re.search(rf"^# .+\n{name}=", env, re.MULTILINE), name
    assert len(placeholders) == len(set(placeholders))
    output = checked(tmp_path).stdout
    assert "(Asia/Makassar)" in output and "(Asia/Jayapura)" in output
    for line in expected:
        assert line in output


def test_init_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    (tmp_path / "sambung.yaml").write_text("# mine\n", encoding="utf-8")
    args = ("init", "--non-interactive", "--outlet", "kemang:WIB")
    refused = sambung(*args, cwd=tmp_path)
    assert refused.returncode == 2 and "already exists" in refused.stderr
    assert (tmp_path / "sambung.yaml").read_text(encoding="utf-8") == "# mine\n"
    assert not (tmp_path / "sambung.env").exists()
    forced = sambung(*args, "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    checked(tmp_path)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--outlet", "kemang:CET-ish"], "unknown time zone"),
        (["--outlet", "Blok M:WIB"], "outlet id"),
        (["--outlet", "kemang", "--connector", "kemang:kasir"], "no connector 'kasir'"),
        (["--outlet", "kemang", "--connector", "kemang:qasir:webhook"], "does not support"),
        (["--outlet", "kemang", "--connector", "blok-m:qasir"], "no --outlet 'blok-m'"),
        ([], "no outlet given"),
    ],
)
def test_init_refuses_what_it_cannot_use(tmp_path: Path, flags: list[str], message: str) -> None:
    result = sambung("init", "--non-interactive", *flags, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert not (tmp_path / "sambung.yaml").exists()


def test_init_asks_on_stdin(tmp_path: Path) -> None:
    answers = "\n".join(
        [
            "kemang",  # outlet id
            "",  # time zone: WIB
            "pawoon, moka",
            "webhook+file-drop",  # pawoon's modes
            "bogus",  # moka's modes: refused, asked again
            "poll",
            "Panakkukang",  # refused: upper case
            "panakkukang",
            "Mars/Olympus",  # refused
            "wita",
            "qasir",  # one mode only: not asked
            "",  # done
        ]
    )
    result = sambung("init", "--output", "sambung.yaml", cwd=tmp_path, stdin=answers + "\n")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "unknown mode 'bogus'" in result.stdout and "unknown time zone" in result.stdout
    output = checked(tmp_path).stdout
    assert "outlet kemang" in output and "pawoon: file-drop, webhook" in output
    assert "moka: poll" in output
    assert "outlet panakkukang" in output and "(Asia/Makassar)" in output
    assert "qasir: poll" in output
