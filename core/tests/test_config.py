"""The YAML file: interpolation, validation, and errors named by their YAML path."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest
from sambung.config import load_config
from sambung.errors import ConfigError
from sambung.plugins import Registry, load_plugins

from . import demo_plugin


@pytest.fixture
def registry() -> Registry:
    return load_plugins(discovered=[], extra_modules=[demo_plugin])


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sambung.yaml"
    path.write_text(dedent(text), encoding="utf-8")
    return path


GOOD = """
    store: {url: "sqlite:///./data/sambung.db"}
    server:
      public: {host: 0.0.0.0, port: 8080, base_url: "https://sambung.kopisenja.id"}
    outlets:
      - id: kemang
        name: Kopi Senja Kemang
        timezone: Asia/Jakarta
        connectors:
          demo: {mode: webhook, webhook_secret: "${DEMO_SECRET}"}
      - id: panakkukang
        name: Kopi Senja Panakkukang
        timezone: Asia/Makassar
        connectors:
          demo: {mode: [webhook], webhook_secret: ["${OLD:-older}", "newer"]}
    sinks:
      backend: {type: memory, kinds: [transaction], capacity: 5}
      everything: {type: memory, outlets: [kemang]}
"""


def test_a_good_file_loads_with_env_values_and_typed_settings(
    tmp_path: Path, registry: Registry
) -> None:
    loaded = load_config(write(tmp_path, GOOD), registry, environ={"DEMO_SECRET": "s3cret"})

    kemang, makassar = loaded.connections
    assert kemang.settings.webhook_secret[0].get_secret_value() == "s3cret"
    assert [s.get_secret_value() for s in makassar.settings.webhook_secret] == ["older", "newer"]
    assert makassar.outlet.timezone.key == "Asia/Makassar"
    assert set(loaded.secrets) == {"s3cret", "older", "newer"}
    assert loaded.webhook_url(kemang) == (
        "https://sambung.kopisenja.id/api/v1/integrations/webhooks/demo/kemang"
    )
    assert loaded.sinks_for("kemang", "transaction") == ("backend", "everything")
    assert loaded.sinks_for("panakkukang", "inventory_level") == ()


def test_every_problem_is_reported_with_its_path(tmp_path: Path, registry: Registry) -> None:
    path = write(
        tmp_path,
        """
        server: {public: {port: 99999}}
        outlets:
          - id: Kemang Raya
            name: Kemang
            timezone: Asia/Atlantis
            connectors:
              demo: {mode: webhook, webhook_secret: "${MISSING_SECRET}"}
          - id: blok-m
            name: Blok M
            connectors:
              demo: {mode: poll}
              moka: {mode: webhook}
    """,
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, registry, environ={})
    messages = [str(p) for p in caught.value.problems]
    assert any(
        m.startswith(
            "outlets[0].connectors.demo.webhook_secret: environment variable "
            "MISSING_SECRET is not set"
        )
        for m in messages
    )
    assert any(m.startswith("server.public.port:") for m in messages)
    assert any(m.startswith("outlets[0].id:") for m in messages)
    assert any(
        m.startswith("outlets[0].timezone: unknown timezone 'Asia/Atlantis'") for m in messages
    )


def test_connector_blocks_are_validated_by_their_own_settings(
    tmp_path: Path, registry: Registry
) -> None:
    path = write(
        tmp_path,
        """
        outlets:
          - id: kemang
            name: Kemang
            connectors:
              demo: {mode: poll, webhook_secret: x, retires: 3}
          - id: blok-m
            name: Blok M
            connectors:
              demo: {mode: webhook}
              moka: {mode: webhook}
        sinks:
          backend: {type: kafka}
          other: {type: memory, capacity: lots}
    """,
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, registry, environ={})
    messages = {str(p) for p in caught.value.problems}
    assert "outlets[1].connectors.demo.webhook_secret: field required" in messages
    assert any(
        m.startswith("outlets[0].connectors.demo.mode: input should be")
        or m.startswith("outlets[0].connectors.demo.retires: extra inputs")
        for m in messages
    )
    assert any(
        m.startswith("outlets[1].connectors.moka: no connector named 'moka' is installed")
        for m in messages
    )
    assert any(m.startswith("sinks.backend.type: no sink type 'kafka'") for m in messages)
    assert any(m.startswith("sinks.other.capacity:") for m in messages)


def test_a_mode_the_connector_does_not_support_is_refused(
    tmp_path: Path, registry: Registry
) -> None:
    path = write(
        tmp_path,
        """
        outlets:
          - id: kemang
            name: Kemang
            connectors:
              demo: {mode: [webhook, file-drop], webhook_secret: x}
    """,
    )
    with pytest.raises(
        ConfigError,
        match=r"outlets\[0\].connectors.demo.mode: demo supports "
        r"webhook; not file-drop",
    ):
        load_config(path, registry, environ={})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("outlets: [\n  - id: a\n   name: b", "not valid YAML"),
        ("- just\n- a list", "expected a mapping"),
        ("outlets: []", "outlets: list should have at least 1 item"),
        ("outlets:\n  - {id: a, name: A}\n  - {id: a, name: B}", "outlet ids must be unique"),
    ],
)
def test_broken_files_get_a_clear_message(
    tmp_path: Path, registry: Registry, text: str, expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_config(write(tmp_path, text), registry, environ={})


def test_dollar_dollar_is_a_literal_dollar(tmp_path: Path, registry: Registry) -> None:
    path = write(
        tmp_path,
        """
        outlets:
          - id: kemang
            name: "Kemang $$5 ${NAME}"
    """,
    )
    loaded = load_config(path, registry, environ={"NAME": "Raya"})
    assert loaded.config.outlets[0].name == "Kemang $5 Raya"


def test_a_missing_file_is_a_config_error(tmp_path: Path, registry: Registry) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml", registry)


def test_replicas_name_themselves_and_their_lease_time(tmp_path: Path, registry: Registry) -> None:
    text = GOOD + "    replicas: {id: kasir-2, lease_ttl: 20s}\n"
    loaded = load_config(write(tmp_path, text), registry, environ={"DEMO_SECRET": "s"})
    assert loaded.config.replicas.id == "kasir-2"
    assert loaded.config.replicas.lease_ttl.total_seconds() == 20

    default = load_config(write(tmp_path, GOOD), registry, environ={"DEMO_SECRET": "s"})
    assert default.config.replicas.id is None
    assert default.config.replicas.lease_ttl.total_seconds() == 15

    with pytest.raises(ConfigError) as caught:
        load_config(
            write(tmp_path, GOOD + "    replicas: {lease_ttl: 200ms}\n"),
            registry,
            environ={"DEMO_SECRET": "s"},
        )
    assert any(str(p).startswith("replicas.lease_ttl:") for p in caught.value.problems)
