"""The distribution is installed and registers its sink through the `sambung` hook."""

from __future__ import annotations

from importlib.metadata import distribution

import sambung_jurnal
from sambung.testing.core import load_plugins
from sambung_jurnal import JurnalSink


def test_entry_point_names_the_package() -> None:
    dist = distribution("sambung-jurnal")
    [entry_point] = [ep for ep in dist.entry_points if ep.group == "sambung"]

    assert (entry_point.name, entry_point.value) == ("jurnal", "sambung_jurnal")
    assert entry_point.load() is sambung_jurnal


def test_core_loads_it_through_the_entry_point() -> None:
    registry = load_plugins(frozenset({"jurnal"}))

    assert registry.failures == []
    assert registry.sinks["jurnal"] is JurnalSink
    assert registry.connectors == {}
