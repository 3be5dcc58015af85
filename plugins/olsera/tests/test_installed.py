"""The distribution is installed and registers its connector through the `sambung` hook."""

from __future__ import annotations

from importlib.metadata import distribution

import sambung_olsera
from sambung.testing.core import load_plugins
from sambung_olsera import OlseraConnector


def test_entry_point_names_the_package() -> None:
    dist = distribution("sambung-olsera")
    [entry_point] = [ep for ep in dist.entry_points if ep.group == "sambung"]

    assert (entry_point.name, entry_point.value) == ("olsera", "sambung_olsera")
    assert entry_point.load() is sambung_olsera


def test_core_loads_it_through_the_entry_point() -> None:
    registry = load_plugins(frozenset({"olsera"}))

    assert registry.failures == []
    assert registry.connectors == {"olsera": OlseraConnector}
