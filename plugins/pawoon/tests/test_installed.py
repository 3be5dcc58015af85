"""The distribution is installed and registers its connector through the `sambung` hook."""

from __future__ import annotations

from importlib.metadata import distribution

import sambung_pawoon
from sambung.plugin import Connector
from sambung.testing.core import load_plugins
from sambung_pawoon import PawoonConnector


def test_entry_point_names_the_package() -> None:
    dist = distribution("sambung-pawoon")
    [entry_point] = [ep for ep in dist.entry_points if ep.group == "sambung"]

    assert (entry_point.name, entry_point.value) == ("pawoon", "sambung_pawoon")
    assert entry_point.load() is sambung_pawoon


def test_registers_the_connector() -> None:
    registered: list[type[Connector]] = []

    sambung_pawoon.sambung_register_connectors(registered.append)

    assert registered == [PawoonConnector]
    assert registered[0].name == "pawoon"


def test_core_loads_it_through_the_entry_point() -> None:
    registry = load_plugins(frozenset({"pawoon"}))

    assert registry.failures == []
    assert registry.connectors == {"pawoon": PawoonConnector}
    assert [(p.name, p.distribution) for p in registry.plugins] == [("pawoon", "sambung-pawoon")]
