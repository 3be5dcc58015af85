"""Plugins reach core through one door: `sambung.plugin` (and, in their tests, `sambung.testing`).

Core's modules move (the store is rewritten, modules go into folders); a plugin that imported
them directly would break on every move. These tests read every plugin file's imports, so a
new one that bypasses the door fails here rather than after the next move.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
import sambung.plugin

REPO = Path(__file__).resolve().parents[2]
# The built-in plugins, and the third-party example the end-to-end tests install.
PLUGINS = REPO / "plugins"
HELLO = REPO / "tests" / "fixtures" / "sambung-hello"

SOURCE_DOORS = frozenset({"sambung.plugin"})
# A plugin's tests, and its fake vendor (a test double the demo also serves), may use the kit.
TEST_DOORS = frozenset({"sambung.plugin", "sambung.testing"})


def core_imports(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Every `sambung` or `sambung.*` module a file imports (not `sambung_<plugin>`), by line."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        else:
            continue
        for module in modules:
            if module == "sambung" or module.startswith("sambung."):
                yield node.lineno, module


def allowed(module: str, doors: frozenset[str]) -> bool:
    """Whether `module` is one of `doors` or inside one of them."""
    return any(module == door or module.startswith(door + ".") for door in doors)


def is_test_code(relative: Path) -> bool:
    """A plugin's tests, and its `fake.py` (a fake vendor, served by the demo and the tests)."""
    return "tests" in relative.parts or relative.name == "fake.py"


def violations(root: Path) -> list[str]:
    """`path:line module` for every import under `root` that goes around the door."""
    found = []
    for path in sorted(root.rglob("*.py")):
        doors = TEST_DOORS if is_test_code(path.relative_to(root)) else SOURCE_DOORS
        for line, module in sorted(core_imports(ast.parse(path.read_text(), str(path)))):
            if not allowed(module, doors):
                found.append(f"{path.relative_to(root)}:{line} {module}")
    return found


@pytest.mark.parametrize("root", [PLUGINS, HELLO], ids=["plugins", "sambung-hello"])
def test_plugins_import_core_only_through_the_door(root: Path) -> None:
    assert violations(root) == []


def test_the_check_sees_an_import_around_the_door(tmp_path: Path) -> None:
    source = tmp_path / "sambung_x" / "src" / "client.py"
    source.parent.mkdir(parents=True)
    source.write_text(
        "from sambung.plugin import VendorHttp\n"
        "def f():\n"
        "    from sambung.tokens import Token\n"
        "import sambung.store\n"
        "from sambung import hookimpl\n"
        "from sambung.testing import outlet\n"
    )
    assert violations(tmp_path) == [
        "sambung_x/src/client.py:3 sambung.tokens",
        "sambung_x/src/client.py:4 sambung.store",
        "sambung_x/src/client.py:5 sambung",
        "sambung_x/src/client.py:6 sambung.testing",
    ]


@pytest.mark.parametrize("name", sambung.plugin.__all__)
def test_every_door_name_is_there(name: str) -> None:
    assert hasattr(sambung.plugin, name)


def test_the_door_lists_all_it_exports() -> None:
    public = {
        name
        for name, value in vars(sambung.plugin).items()
        if not name.startswith("_") and not isinstance(value, type(sambung))
    }
    assert public - {"annotations"} == set(sambung.plugin.__all__)
