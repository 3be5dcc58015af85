"""The `sambung` command as a newcomer meets it: where `-c` goes, what it needs set, what it
prints. Through the real entry point, `main(argv)`, and as a process where the pipe matters."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml
from sambung.cli.main import _parser, main

# Every command that reads a config, with the arguments it needs besides `-c`; an action is
# the second word.
CONFIG_COMMANDS: list[list[str]] = [
    ["run"],
    ["check"],
    ["records"],
    ["status"],
    ["migrate"],
    ["export", "--to", "postgresql://x@y/z"],
    ["import", "--outlet", "kemang", "--connector", "pawoon", "a.csv"],
    ["backup", "out.tar.gz"],
    ["restore", "in.tar.gz"],
    ["connect", "kemang", "moka"],
    ["credentials", "list"],
    ["dlq", "list"],
    ["dlq", "show", "1"],
    ["dlq", "replay", "1"],
    ["dlq", "discard", "1"],
]
ACTIONS = {"credentials", "dlq"}


def write_config(tmp_path: Path) -> Path:
    """A config with one webhook connection whose secret is only in the environment."""
    path = tmp_path / "sambung.yaml"
    document = {
        "store": {"url": "sqlite:///sambung.db"},
        "server": {"public": {"host": "127.0.0.1", "port": 0}},
        "outlets": [
            {
                "id": "kemang",
                "name": "Kemang",
                "connectors": {"pawoon": {"mode": "webhook", "webhook_secret": "${PAWOON_SECRET}"}},
            },
            {"id": "senopati", "name": "Senopati"},
        ],
    }
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def parse(argv: list[str]) -> argparse.Namespace:
    return _parser().parse_args(argv)


def test_every_command_takes_the_config_list_is_complete() -> None:
    commands = next(
        a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)
    ).choices
    named = {argv[0] for argv in CONFIG_COMMANDS} | {"plugins"}
    assert named == set(commands), "a new command: add it to CONFIG_COMMANDS"


@pytest.mark.parametrize("argv", CONFIG_COMMANDS, ids=" ".join)
def test_every_command_takes_c_file_after_its_name(argv: list[str]) -> None:
    assert parse([*argv, "-c", "given.yaml"]).config == Path("given.yaml")
    assert parse([*argv[:1], "--config", "given.yaml", *argv[1:]]).config == Path("given.yaml")
    if argv[0] in ACTIONS:
        assert parse([argv[0], "-c", "given.yaml", *argv[1:]]).config == Path("given.yaml")


@pytest.mark.parametrize("argv", CONFIG_COMMANDS, ids=" ".join)
def test_sambung_config_is_the_default_then_sambung_yaml(
    argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SAMBUNG_CONFIG", raising=False)
    assert parse(argv).config == Path("sambung.yaml")
    monkeypatch.setenv("SAMBUNG_CONFIG", "/etc/sambung/site.yaml")
    assert parse(argv).config == Path("/etc/sambung/site.yaml")
    assert parse([*argv, "-c", "given.yaml"]).config == Path("given.yaml")


def test_dlq_list_reads_the_config_given_after_the_action(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PAWOON_SECRET", "pawoon-secret-for-tests")
    config = write_config(tmp_path)
    assert main(["dlq", "list", "-c", str(config)]) == 0
    assert "no dead letters match" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [["records"], ["status"], ["dlq", "list"], ["dlq", "show", "1"], ["credentials", "list"]],
    ids=" ".join,
)
def test_read_only_commands_need_no_secret_in_the_environment(
    argv: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("PAWOON_SECRET", raising=False)
    config = write_config(tmp_path)
    assert main([*argv, "-c", str(config)]) in (0, 1)  # 1: `dlq show` of an id not there
    assert "PAWOON_SECRET" not in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["run"], ["check"], ["dlq", "replay", "1"]], ids=" ".join)
def test_commands_that_use_secrets_name_the_unset_variable(
    argv: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("PAWOON_SECRET", raising=False)
    config = write_config(tmp_path)
    assert main([*argv, "-c", str(config)]) == 2
    err = capsys.readouterr().err
    assert "outlets[0].connectors.pawoon.webhook_secret: environment variable PAWOON_SECRET" in err


def test_an_unset_variable_that_breaks_a_value_is_named_even_when_not_needed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SAMBUNG_TEST_PORT", raising=False)
    config = write_config(tmp_path)
    document = yaml.safe_load(config.read_text(encoding="utf-8"))
    document["server"]["public"]["port"] = "${SAMBUNG_TEST_PORT}"
    config.write_text(yaml.safe_dump(document), encoding="utf-8")
    monkeypatch.setenv("PAWOON_SECRET", "pawoon-secret-for-tests")
    assert main(["records", "-c", str(config)]) == 2
    assert "environment variable SAMBUNG_TEST_PORT is not set" in capsys.readouterr().err
