"""config.example.yaml: it validates, documents every option, and `sambung check` reads it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pydantic import BaseModel
from sambung.config import Config, load_config
from sambung.connectors import FileDropSettings, HmacWebhookSettings, PollSettings
from sambung.plugins import load_plugins

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / "config.example.yaml"
ENV = {
    "PAWOON_SECRET": "example-pawoon",
    "MOKA_SECRET": "example-moka",
    "SAMBUNG_ADMIN_TOKEN": "example-admin-token-0123",
}


def option_names(model: type[BaseModel]) -> set[str]:
    """Every field name of a settings model and of the models nested in it."""
    names: set[str] = set()
    for name, field in model.model_fields.items():
        names.add(name)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names |= option_names(annotation)
    return names


def test_the_example_validates() -> None:
    loaded = load_config(EXAMPLE, load_plugins(), environ=ENV)
    assert {c.outlet.id for c in loaded.connections} == {"kemang", "panakkukang"}


def test_the_example_documents_every_option() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    documented = option_names(Config) | option_names(HmacWebhookSettings)
    documented |= option_names(FileDropSettings)
    documented |= option_names(PollSettings)
    registry = load_plugins()
    for name in ("qasir", "olsera", "pawoon", "moka", "xendit"):
        documented |= option_names(registry.connectors[name].Settings)
    for name in ("accurate", "jurnal"):
        documented |= option_names(registry.sinks[name].Settings)
    for name in ("webhook", "email", "telegram"):
        channel = registry.notifiers[name].Settings
        documented |= {f.alias or n for n, f in channel.model_fields.items()}
    missing = sorted(name for name in documented if f"{name}:" not in text)
    assert not missing, f"config.example.yaml does not mention: {missing}"


def test_check_prints_outlets_connectors_and_webhook_urls() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sambung", "check", "-c", str(EXAMPLE)],
        capture_output=True,
        text=True,
        env={**os.environ, **ENV},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "outlet panakkukang" in result.stdout and "(Asia/Makassar)" in result.stdout
    assert "/api/v1/integrations/webhooks/moka/kemang" in result.stdout
    assert "/api/v1/integrations/webhooks/pawoon/panakkukang" in result.stdout
    assert "example-pawoon" not in result.stdout + result.stderr


def test_check_on_a_broken_file_names_every_problem_and_fails(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "server: {public: {port: http}}\n"
        "outlets:\n"
        "  - {id: kemang, name: Kemang, timezone: Asia/Jakarta,\n"
        "     connectors: {pawoon: {mode: webhook, webhook_secret: '${NOT_SET_ANYWHERE}'}}}\n"
        "  - {id: Blok M, name: Blok M, connectors: {moka: {mode: [webhook, poll]},\n"
        "     kasir: {mode: webhook}, qasir: {mode: webhook, api_key: k}}}\n",
        encoding="utf-8",
    )
    result = subprocess.run(
        [sys.executable, "-m", "sambung", "check", "-c", str(broken)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    for expected in (
        "  outlets[0].connectors.pawoon.webhook_secret: environment variable NOT_SET_ANYWHERE",
        "  outlets[1].connectors.kasir: no connector named 'kasir' is installed",
        "  outlets[1].connectors.qasir.mode: qasir supports poll; not webhook",
        "  outlets[1].connectors.moka.webhook_secret: is required, but not set",
        "  outlets[1].connectors.moka.outlet_id: is required, but not set",
        "  outlets[1].id: must match ^[a-z0-9-]+$, not 'Blok M'",
        "  server.public.port: must be a whole number",
    ):
        assert any(line.startswith(expected) for line in lines), (expected, result.stderr)
