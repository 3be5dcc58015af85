"""Plugin loading: entry points, the allow-list, and broken plugins reported and skipped."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import EntryPoint

import pytest
from sambung.plugin import FileDropConnector, PollConnector, PollSettings, Sink, SinkSettings
from sambung.plugins import allowed_plugins, load_plugins

DEMO = EntryPoint("demo", "core.tests.demo_plugin", "sambung")
HALF = EntryPoint("half", "core.tests.broken_plugins:HalfRegistering", "sambung")
MISSING = EntryPoint("missing", "core.tests.broken_plugins:MissingMethod", "sambung")
WRONG_SETTINGS = EntryPoint("wrong", "core.tests.broken_plugins:WrongModeSettings", "sambung")
GONE = EntryPoint("gone", "sambung_no_such_module", "sambung")


def test_installed_plugins_are_found_through_their_entry_points() -> None:
    registry = load_plugins()
    assert {"pawoon", "moka"} <= set(registry.connectors)
    pawoon = next(p for p in registry.plugins if p.name == "pawoon")
    assert pawoon.distribution == "sambung-pawoon" and pawoon.connectors == ("pawoon",)


def test_a_plugin_that_fails_to_import_is_reported_and_skipped() -> None:
    registry = load_plugins(discovered=[GONE, DEMO])
    assert set(registry.connectors) == {"demo"}
    [failure] = registry.failures
    assert failure.name == "gone" and "ModuleNotFoundError" in failure.error


def test_unfit_registrations_skip_the_whole_plugin() -> None:
    registry = load_plugins(discovered=[HALF, MISSING, WRONG_SETTINGS, DEMO])
    assert set(registry.connectors) == {"demo"}
    errors = {f.name: f.error for f in registry.failures}
    assert "name must match" in errors["half"]
    assert "declares mode webhook but not parse()" in errors["missing"]
    assert "declares mode poll: Settings must subclass PollSettings" in errors["wrong"]


class _Polled(PollSettings):
    api_key: str


class _Other(PollSettings):
    token: str


def test_a_connector_s_settings_are_the_model_its_base_is_subscripted_with() -> None:
    class Polled(PollConnector[_Polled]):
        name = "polled"

    assert Polled.Settings is _Polled
    # A subclass that names no model of its own keeps its parent's.
    assert type("Again", (Polled,), {}).Settings is _Polled


def test_bases_naming_different_settings_models_are_refused() -> None:
    with pytest.raises(TypeError, match="different settings models"):

        class Mixed(PollConnector[_Polled], FileDropConnector[_Other]):  # type: ignore[type-var]
            name = "mixed"


def test_a_sink_s_settings_are_the_model_its_base_is_subscripted_with() -> None:
    class Settings(SinkSettings):
        url: str

    class Out(Sink[Settings]):
        name = "out"

    assert Out.Settings is Settings


def test_a_second_connector_with_a_taken_name_is_refused() -> None:
    twice = EntryPoint("demo2", "core.tests.demo_plugin", "sambung")
    registry = load_plugins(discovered=[DEMO, twice])
    assert [f.name for f in registry.failures] == ["demo2"]
    assert "already registered" in registry.failures[0].error


def test_the_allow_list_restricts_what_loads() -> None:
    assert allowed_plugins(None) is None and allowed_plugins(" ") is None
    allow = allowed_plugins("demo, pawoon")
    assert allow == frozenset({"demo", "pawoon"})
    registry = load_plugins(allow, discovered=[GONE, DEMO])
    assert set(registry.connectors) == {"demo"} and registry.failures == []


def test_notification_hooks_reach_registered_plugins() -> None:
    registry = load_plugins(discovered=[DEMO])
    assert registry.hook.sambung_dead_letter(entry=object()) == []


def test_the_daemon_and_every_plugin_load_without_pytest() -> None:
    """Test tooling stays out of production imports (pytest alone adds half a second a start)."""
    code = (
        "import sys, sambung.cli.main, sambung.runtime.daemon, sambung.plugins\n"
        "sambung.plugins.load_plugins()\n"
        "print(sorted(m for m in ('pytest', 'hypothesis', 'aioresponses') if m in sys.modules))"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert found.strip() == "[]"
