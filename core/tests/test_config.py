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
    messages = {f"{p.path}: {p.message}" for p in caught.value.problems}
    assert "outlets[1].connectors.demo.webhook_secret: is required, but not set" in messages
    assert any(
        m.startswith("outlets[0].connectors.demo.mode: input should be")
        or m.startswith("outlets[0].connectors.demo.retires: is not a known setting; did you mean")
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
        ("outlets: []", "outlets: must have at least 1 item"),
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


# Each message a person reads, as `sambung check` prints it: path, words, and the YAML line.
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            """
            server:
              admin: {token: short}
            outlets: [{id: kemang, name: Kemang}]
            """,
            ["server.admin.token: must be at least 16 characters long; it has 5 (line 3)"],
            id="short-admin-token",
        ),
        pytest.param(
            """
            server:
              admin: {token: "${ADMIN_TOKEN}"}
            outlets: [{id: kemang, name: Kemang}]
            """,
            ["server.admin.token: environment variable ADMIN_TOKEN is not set (line 3)"],
            id="unset-admin-token-is-one-problem",
        ),
        pytest.param(
            """
            server:
              admin: {}
            outlets: [{id: kemang, name: Kemang}]
            """,
            ["server.admin.token: is required, but not set (line 3)"],
            id="missing-admin-token",
        ),
        pytest.param(
            """
            server: {public: {port: 99999}}
            outlets: [{id: kemang, name: Kemang}]
            """,
            ["server.public.port: must be at most 65535, not 99999 (line 2)"],
            id="out-of-range",
        ),
        pytest.param(
            """
            log: {level: verbose}
            outlets: [{id: kemang, name: Kemang}]
            """,
            [
                "log.level: must be one of 'debug', 'info', 'warning' or 'error', "
                "not 'verbose' (line 2)"
            ],
            id="not-one-of",
        ),
        pytest.param(
            """
            outlets:
              - id: kemang
                name: 123
            """,
            ["outlets[0].name: must be text, not the number 123 (line 4)"],
            id="a-number-where-text-is-wanted-outside-secrets",
        ),
    ],
)
def test_problems_read_as_words_with_their_line(
    tmp_path: Path, registry: Registry, text: str, expected: list[str]
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), registry, environ={})
    assert [str(p) for p in caught.value.problems] == expected


# A misspelt key, at every level of the file, is answered with the key it was meant to be.
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "srever: {}\noutlets: [{id: kemang, name: Kemang}]",
            "srever: is not a known setting; did you mean 'server'?",
            id="top",
        ),
        pytest.param(
            "server: {public: {prot: 8080}}\noutlets: [{id: kemang, name: Kemang}]",
            "server.public.prot: is not a known setting; did you mean 'port'?",
            id="server",
        ),
        pytest.param(
            "outlets: [{id: kemang, name: Kemang, timezon: Asia/Jakarta}]",
            "outlets[0].timezon: is not a known setting; did you mean 'timezone'?",
            id="outlet",
        ),
        pytest.param(
            "outlets:\n  - {id: kemang, name: Kemang, connectors: "
            "{demo: {mode: webhook, webhook_secret: s, retires: 3}}}",
            "outlets[0].connectors.demo.retires: is not a known setting; did you mean 'retries'?",
            id="connector-block",
        ),
        pytest.param(
            "outlets:\n  - {id: kemang, name: Kemang, connectors: {dmeo: {mode: webhook}}}",
            "outlets[0].connectors.dmeo: no connector named 'dmeo' is installed "
            "(installed: demo); did you mean 'demo'?",
            id="connector-name",
        ),
        pytest.param(
            "outlets: [{id: kemang, name: Kemang}]\nsinks: {b: {type: memory, capacty: 5}}",
            "sinks.b.capacty: is not a known setting; did you mean 'capacity'?",
            id="sink-own-setting",
        ),
        pytest.param(
            "outlets: [{id: kemang, name: Kemang}]\nsinks: {b: {type: memory, kind: [x]}}",
            "sinks.b.kind: is not a known setting; did you mean 'kinds'?",
            id="sink-core-setting",
        ),
        pytest.param(
            "outlets: [{id: kemang, name: Kemang}]\nsinks: {b: {type: memroy}}",
            "sinks.b.type: no sink type 'memroy' is installed "
            "(installed: http, jsonl, memory, nats); did you mean 'memory'?",
            id="sink-type",
        ),
    ],
)
def test_a_misspelt_key_gets_the_closest_known_one(
    tmp_path: Path, registry: Registry, text: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), registry, environ={})
    assert [f"{p.path}: {p.message}" for p in caught.value.problems] == [expected]


def test_problems_come_in_the_order_of_the_file(tmp_path: Path, registry: Registry) -> None:
    text = """
        sinks:
          other: {type: memory, capacity: lots}
        outlets:
          - id: Kemang Raya
            name: Kemang
            timezone: Asia/Atlantis
          - id: blok-m
            name: Blok M
            connectors:
              demo: {mode: webhook}
        server: {public: {port: 99999}}
    """
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), registry, environ={})
    assert [(p.path, p.line) for p in caught.value.problems] == [
        ("sinks.other.capacity", 3),
        ("outlets[0].id", 5),
        ("outlets[0].timezone", 7),
        ("outlets[1].connectors.demo.webhook_secret", 11),
        ("server.public.port", 12),
    ]


# A syntax error names the line and column of the mistake itself, and shows that line.
@pytest.mark.parametrize(
    ("text", "at", "words", "line"),
    [
        pytest.param(
            'outlets:\n  - id: kemang\n    name: "Kemang\n    timezone: Asia/Jakarta\n'
            "sinks: {}\nsummaries: {}\n",
            "3:11",
            "this quoted text is never closed",
            '    name: "Kemang',
            id="unclosed-quote",
        ),
        pytest.param(
            "outlets: [{id: kemang, name: Kemang}\nsinks: {}\nsummaries: {}\n",
            "1:10",
            "this [ is never closed with ]",
            "outlets: [{id: kemang, name: Kemang}",
            id="unclosed-bracket",
        ),
        pytest.param(
            "outlets:\n  - id: kemang\n    name: Kemang\n   timezone: Asia/Jakarta\n",
            "4:4",
            "this line is indented differently from the lines above it",
            "   timezone: Asia/Jakarta",
            id="indentation",
        ),
        pytest.param(
            "outlets:\n  - id: kemang\n\tname: Kemang\n",
            "3:1",
            "a tab character; YAML indents with spaces only",
            "\tname: Kemang",
            id="tab",
        ),
        pytest.param(
            "outlets:\n  - id: kemang\n    name: Kopi: Senja\n",
            "3:15",
            "quote a value that contains ': '",
            "    name: Kopi: Senja",
            id="colon-in-value",
        ),
        pytest.param(
            'outlets:\n  - id: kemang\n    name: "Kemang\n    timezone: "Asia/Jakarta"\n',
            "4:16",
            "text after a complete value; check the quotes",
            '    timezone: "Asia/Jakarta"',
            id="quote-closed-on-a-later-line",
        ),
        pytest.param(
            'outlets:\n  - id: kemang\n    name: "Kopi\\q"\n',
            "3:17",
            "found unknown escape character 'q'",
            '    name: "Kopi\\q"',
            id="bad-escape-inside-quotes",
        ),
    ],
)
def test_a_syntax_error_points_at_the_mistake(
    tmp_path: Path, registry: Registry, text: str, at: str, words: str, line: str
) -> None:
    path = tmp_path / "sambung.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, registry, environ={})
    first, shown, caret = str(caught.value).splitlines()
    assert first.startswith(f"{path}:{at}: not valid YAML: ")
    assert words in first
    assert shown == f"    {line}"
    assert caret == "    " + " " * (int(at.split(":")[1]) - 1) + "^"


# YAML reads an unquoted 12345 as a number; a secret is text, so it is taken as typed (and
# only a secret: a number given as an outlet's name is still refused, above).
@pytest.mark.parametrize(
    ("value", "secret"),
    [
        pytest.param("12345678901234567890", "12345678901234567890", id="long-int"),
        pytest.param("0123", "0123", id="leading-zero"),
        pytest.param("1.50", "1.50", id="float"),
        pytest.param("[111, newer]", "111", id="rotation-list"),
    ],
)
def test_a_numeric_secret_is_taken_as_typed(
    tmp_path: Path, registry: Registry, value: str, secret: str
) -> None:
    text = f"""
        outlets:
          - id: kemang
            name: Kemang
            connectors:
              demo: {{mode: webhook, webhook_secret: {value}}}
    """
    loaded = load_config(write(tmp_path, text), registry, environ={})
    (connection,) = loaded.connections
    assert connection.settings.webhook_secret[0].get_secret_value() == secret
    assert secret in loaded.secrets


def test_a_numeric_admin_token_is_taken_as_typed(tmp_path: Path, registry: Registry) -> None:
    text = """
        server:
          admin: {token: 1234567890123456789}
        outlets: [{id: kemang, name: Kemang}]
    """
    loaded = load_config(write(tmp_path, text), registry, environ={})
    assert loaded.config.server.admin is not None
    assert loaded.config.server.admin.token.get_secret_value() == "1234567890123456789"


def test_a_numeric_sink_secret_is_judged_as_text(tmp_path: Path, registry: Registry) -> None:
    text = """
        outlets: [{id: kemang, name: Kemang}]
        sinks:
          backend: {type: http, url: "https://example.com/hook", secret: 12345}
    """
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), registry, environ={})
    assert [f"{p.path}: {p.message}" for p in caught.value.problems] == [
        "sinks.backend.secret: must be a Standard Webhooks secret: whsec_ and base64"
    ]
