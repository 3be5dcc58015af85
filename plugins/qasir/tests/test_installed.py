"""The distribution is installed and registers its connector through the `sambung` hook."""

from __future__ import annotations

from importlib.metadata import distribution

import sambung_qasir
from sambung.plugin import Mode
from sambung.testing.core import load_plugins
from sambung_qasir import QasirConnector


def test_entry_point_names_the_package() -> None:
    dist = distribution("sambung-qasir")
    [entry_point] = [ep for ep in dist.entry_points if ep.group == "sambung"]

    assert (entry_point.name, entry_point.value) == ("qasir", "sambung_qasir")
    assert entry_point.load() is sambung_qasir


def test_core_loads_it_through_the_entry_point() -> None:
    registry = load_plugins(frozenset({"qasir"}))

    assert registry.failures == []
    assert registry.connectors == {"qasir": QasirConnector}
    assert QasirConnector.modes == frozenset({Mode.POLL})
