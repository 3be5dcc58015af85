"""The distribution is installed and registers its connector through the `sambung` hook."""

from __future__ import annotations

from importlib.metadata import distribution

import sambung_moka
from sambung.plugin import Connector
from sambung.testing.core import load_plugins
from sambung_moka import MokaConnector


def test_entry_point_names_the_package() -> None:
    dist = distribution("sambung-moka")
    [entry_point] = [ep for ep in dist.entry_points if ep.group == "sambung"]

    assert (entry_point.name, entry_point.value) == ("moka", "sambung_moka")
    assert entry_point.load() is sambung_moka


def test_registers_the_connector() -> None:
    registered: list[type[Connector]] = []

    sambung_moka.sambung_register_connectors(registered.append)

    assert registered == [MokaConnector]
    assert registered[0].name == "moka"


def test_core_loads_it_through_the_entry_point() -> None:
    registry = load_plugins(frozenset({"moka"}))

    assert registry.failures == []
    assert registry.connectors == {"moka": MokaConnector}
    assert [(p.name, p.distribution) for p in registry.plugins] == [("moka", "sambung-moka")]
