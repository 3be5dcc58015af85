"""The `sambung` command as a newcomer meets it: where `-c` goes, what it needs set, what it
prints. Through the real entry point, `main(argv)`, and as a process where the pipe matters."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
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
    ["backfill", "kemang", "qasir", "--since", "2026-11-20"],
    ["backfill", "list"],
    ["cursor", "show"],
    ["cursor", "set", "kemang", "qasir", "2026-11-20"],
    ["cursor", "reset", "kemang", "qasir"],
    ["pause", "kemang", "qasir"],
    ["resume", "kemang", "qasir"],
    ["runs", "kemang", "qasir"],
    ["gaps"],
    ["alerts"],
    ["deliveries", "list"],
    ["deliveries", "show", "1"],
    ["reconcile"],
]
ACTIONS = {"credentials", "dlq", "cursor", "deliveries"}


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """`main()` sets up logging for the process, onto pytest's captured stderr: undo it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers[:], root.level = handlers, level


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
    named = {argv[0] for argv in CONFIG_COMMANDS} | {"plugins", "init"}  # init writes one
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
    [
        ["records"],
        ["status"],
        ["dlq", "list"],
        ["dlq", "show", "1"],
        ["dlq", "list", "--group"],
        ["dlq", "replay", "--dry-run"],
        ["deliveries", "list"],
        ["deliveries", "show", "1"],
        ["credentials", "list"],
    ],
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


def fill_store(config: Path) -> None:
    """A daily summary, a dead letter and a credential in the config's store."""
    from datetime import UTC, date, datetime
    from decimal import Decimal

    from sambung.models import DailySummary, LineItem, Transaction
    from sambung.store import DeadLetterIn, IngestRequest, StoredCredential, open_store

    summary = DailySummary(
        outlet="kemang",
        source_system="sambung",
        external_id="kemang:2026-11-26",
        business_date=date(2026, 11, 26),
        transactions=3,
        subtotal=Decimal(82500),
        total=Decimal(82500),
    )
    when = datetime(2026, 11, 26, 13, 15, tzinfo=UTC)
    webhooked = Transaction(  # as a pawoon webhook stores it: no cursor, no connection state
        outlet="kemang",
        source_system="pawoon",
        external_id="TRX-1",
        occurred_at=when,
        business_date=when.date(),
        subtotal=Decimal(27500),
        total=Decimal(27500),
        items=(
            LineItem(
                name="Es Kopi", quantity=Decimal(1), unit_price=Decimal(27500), total=Decimal(27500)
            ),
        ),
    )
    letter = DeadLetterIn("ingest", "kemang", "pawoon", "InvalidPayload", "no outlet_id")
    credential = StoredCredential("kemang", "moka", "oauth", b"sealed", when, when)

    async def go() -> None:
        store = open_store("sqlite:///sambung.db", base_dir=config.parent)
        await store.open()
        try:
            await store.ingest(IngestRequest(records=[summary], routes=[()]))
            await store.ingest(IngestRequest(records=[webhooked], routes=[()]))
            await store.ingest(IngestRequest(dead_letter=letter))
            await store.save_credential(credential)
        finally:
            await store.close()

    asyncio.run(go())


def after_loops(out: str) -> list[str]:
    """The lines after the daemon's loops (and the blank line that ends them)."""
    lines = out.splitlines()
    return lines[lines.index("") + 1 :]


def test_records_of_every_kind_in_a_table_with_headers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    fill_store(config)
    assert main(["records", "-c", str(config), "--kind", "daily_summary"]) == 0
    table = after_loops(capsys.readouterr().out)
    assert table[0].split() == [
        "ID", "OUTLET", "CONNECTOR", "KIND", "EXTERNAL", "ID", "REV", "AMOUNT", "UPDATED"
    ]  # fmt: skip
    assert "kemang:2026-11-26" in table[1] and "daily_summary" in table[1]
    assert len(table) == 2


def test_records_json_is_one_record_per_line_and_nothing_else(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    fill_store(config)
    assert main(["records", "-c", str(config), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines and all("section" not in line and "external_id" in line for line in lines)


def test_dlq_list_and_credentials_list_print_column_headers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    fill_store(config)
    assert main(["dlq", "list", "-c", str(config)]) == 0
    header, entry = capsys.readouterr().out.splitlines()
    assert header.split() == ["ID", "CREATED", "STAGE", "OUTLET", "CONNECTOR", "STATUS", "ERROR"]
    assert "InvalidPayload: no outlet_id" in entry
    assert main(["credentials", "list", "-c", str(config)]) == 0
    header, entry = capsys.readouterr().out.splitlines()
    assert header.split() == ["OUTLET", "CONNECTOR", "KIND", "EXPIRES", "UPDATED"]
    assert entry.split()[:3] == ["kemang", "moka", "oauth"]


@pytest.mark.parametrize(
    "argv",
    [
        ["records", "--outlet", "kemnag"],
        ["dlq", "list", "--outlet", "kemnag"],
        ["dlq", "replay", "--all", "--outlet", "kemnag"],
        ["import", "--outlet", "kemnag", "--connector", "pawoon", "a.csv"],
        ["connect", "kemnag", "pawoon"],
    ],
    ids=" ".join,
)
def test_an_outlet_not_in_the_config_is_an_error_naming_those_that_are(
    argv: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PAWOON_SECRET", "pawoon-secret-for-tests")
    config = write_config(tmp_path)
    assert main([*argv, "-c", str(config)]) == 2
    out, err = capsys.readouterr()
    assert "no outlet 'kemnag'" in err and "(configured: kemang, senopati)" in err
    assert out == ""


def test_a_closed_pipe_ends_the_command_without_a_traceback(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    with subprocess.Popen(
        [sys.executable, "-m", "sambung", "records", "-c", str(config), "--limit", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()  # `| head -0`: the reader has gone before the first line
        err = process.stderr.read().decode()
        code = process.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert code == 141


def test_status_counts_webhook_records_as_the_admin_api_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sambung.cli.loading import load_config, plugin_registry
    from sambung.runtime.status import connection_status
    from sambung.store import open_store

    config = write_config(tmp_path)
    fill_store(config)
    assert main(["status", "-c", str(config), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    shown = [line for line in lines if line.pop("section") == "connections"]

    async def api_view() -> list[dict[str, object]]:
        loaded = load_config(config, plugin_registry(), need_env=False)
        store = open_store(loaded.config.store.url, base_dir=loaded.base_dir)
        await store.open()
        try:
            return await connection_status(store, loaded)
        finally:
            await store.close()

    assert shown == asyncio.run(api_view())  # what /api/v1/status lists as "connections"
    [pawoon] = shown
    assert pawoon["records"] == 1 and pawoon["last_success_at"] is not None

    assert main(["status", "-c", str(config)]) == 0
    table = after_loops(capsys.readouterr().out)
    assert table[0].split()[:6] == ["OUTLET", "CONNECTOR", "MODE", "STATE", "RECORDS", "DLQ"]
    assert table[1].split()[:6] == ["kemang", "pawoon", "webhook", "ok", "1", "1"]
    assert "pawoon: last error" in "\n".join(table) and "no outlet_id" in "\n".join(table)


def test_a_polled_connection_that_never_ran_is_not_yet_run_not_ok(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    document = yaml.safe_load(config.read_text(encoding="utf-8"))
    document["outlets"][1]["connectors"] = {"qasir": {"mode": "poll", "api_key": "k" * 20}}
    config.write_text(yaml.safe_dump(document), encoding="utf-8")

    assert main(["status", "-c", str(config), "--json"]) == 0

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    states = {
        line["connector"]: line["state"] for line in lines if line["section"] == "connections"
    }
    assert states == {"pawoon": "ok", "qasir": "not_yet_run"}
