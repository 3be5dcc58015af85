"""`sambung migrate` and `sambung run` on a schema from the future, on both backends, as real
commands."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import yaml
from sambung.store.postgres import migrations as postgres_migrations
from sambung.store.sqlite import migrations as sqlite_migrations

from .test_store import stamp_future_version


def sambung(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sambung", *args], capture_output=True, text=True, timeout=60
    )


def write_config(tmp_path: Path, store_url: str) -> Path:
    path = tmp_path / "sambung.yaml"
    document = {
        "store": {"url": store_url},
        "server": {"public": {"host": "127.0.0.1", "port": 0}},
        "outlets": [{"id": "kemang", "name": "Kemang"}],
    }
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def test_migrate_names_what_it_applied_then_nothing(sambung_store_url: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, sambung_store_url)
    known = sqlite_migrations() if sambung_store_url.startswith("sqlite") else postgres_migrations()

    first = sambung("migrate", "-c", str(config))
    assert first.returncode == 0, first.stderr
    assert [line.removeprefix("applied ") for line in first.stdout.splitlines()[:-1]] == [
        name for _, name, _ in known
    ]
    again = sambung("migrate", "-c", str(config))
    assert again.returncode == 0 and "(0 migration(s) applied now)" in again.stdout


def test_run_refuses_a_schema_newer_than_it_knows(sambung_store_url: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, sambung_store_url)
    assert sambung("migrate", "-c", str(config)).returncode == 0
    asyncio.run(stamp_future_version(sambung_store_url))

    refused = sambung("run", "-c", str(config))
    assert refused.returncode == 2
    assert "newer than this sambung knows" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_an_unreachable_postgresql_is_a_clear_start_up_error(tmp_path: Path) -> None:
    config = write_config(tmp_path, "postgresql://sambung:hunter2@127.0.0.1:9/nowhere")
    refused = sambung("migrate", "-c", str(config))
    assert refused.returncode == 2
    assert "cannot connect to PostgreSQL" in refused.stderr
    assert "hunter2" not in refused.stderr + refused.stdout


def test_a_password_in_the_store_url_is_never_printed_or_logged(tmp_path: Path) -> None:
    from sambung.config import load_config
    from sambung.plugins import load_plugins

    config = write_config(tmp_path, "postgresql://sambung:hunter2-db@127.0.0.1:5432/test")
    assert (
        "hunter2-db" in load_config(config, load_plugins(discovered=[])).secrets
    )  # so the log redactor masks it
    checked = sambung("check", "-c", str(config))
    assert checked.returncode == 0, checked.stderr
    assert "postgresql://sambung:***@127.0.0.1:5432/test" in checked.stdout
    assert "hunter2-db" not in checked.stdout + checked.stderr
