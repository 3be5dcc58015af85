"""The distribution is installed and registers its connector through the `sambung` hook."""

from __future__ import annotations

from importlib.metadata import distribution

import sambung_xendit
from sambung.plugin import Mode
from sambung.testing.core import load_plugins
from sambung_xendit import XenditConnector


def test_entry_point_names_the_package() -> None:
    dist = distribution("sambung-xendit")
    [entry_point] = [ep for ep in dist.entry_points if ep.group == "sambung"]

    assert (entry_point.name, entry_point.value) == ("xendit", "sambung_xendit")
    assert entry_point.load() is sambung_xendit


def test_core_loads_it_through_the_entry_point() -> None:
    registry = load_plugins(frozenset({"xendit"}))

    assert registry.failures == []
    assert registry.connectors == {"xendit": XenditConnector}
    assert XenditConnector.modes == frozenset({Mode.WEBHOOK, Mode.POLL})
