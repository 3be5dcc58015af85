"""The distribution is installed and registers its sink through the `sambung` hook."""

from __future__ import annotations

from importlib.metadata import distribution

import sambung_accurate
from sambung.testing.core import load_plugins
from sambung_accurate import AccurateSink


def test_entry_point_names_the_package() -> None:
    dist = distribution("sambung-accurate")
    [entry_point] = [ep for ep in dist.entry_points if ep.group == "sambung"]

    assert (entry_point.name, entry_point.value) == ("accurate", "sambung_accurate")
    assert entry_point.load() is sambung_accurate


def test_core_loads_it_through_the_entry_point() -> None:
    registry = load_plugins(frozenset({"accurate"}))

    assert registry.failures == []
    assert registry.sinks["accurate"] is AccurateSink
    assert registry.connectors == {}
