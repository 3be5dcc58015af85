"""Every hook is documented (when it is called, what it returns) and exercised by a test."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from sambung import hookspecs

ROOT = Path(__file__).parents[2]
HOOKS = [
    name
    for name, _ in inspect.getmembers(hookspecs, inspect.isfunction)
    if name.startswith("sambung_")
]


def test_there_are_hooks() -> None:
    assert {"sambung_register_connectors", "sambung_register_sinks", "sambung_dead_letter"} <= set(
        HOOKS
    )


@pytest.mark.parametrize("name", HOOKS)
def test_each_hook_says_when_it_is_called_and_what_it_returns(name: str) -> None:
    doc = inspect.getdoc(getattr(hookspecs, name)) or ""
    assert "Called" in doc, f"{name}: say when it is called"
    assert "Return" in doc, f"{name}: say what a return value means"
    hints = inspect.get_annotations(getattr(hookspecs, name))
    assert "return" in hints and len(hints) > 1, f"{name}: type every argument and the return"


@pytest.mark.parametrize("name", HOOKS)
def test_each_hook_is_exercised_by_a_test(name: str) -> None:
    tests = [p for p in ROOT.glob("**/tests/**/*.py") if ".venv" not in p.parts]
    users = [p for p in tests if p.name != Path(__file__).name and name in p.read_text()]
    assert users, f"no test implements or calls {name}"
