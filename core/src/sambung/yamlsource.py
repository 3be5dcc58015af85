"""Reading the YAML file with where each key sits, so a problem names its line, problems come
in file order, and a syntax error points at the mistake with the line itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .validation import path_of

# PyYAML's words for a syntax error, and what they mean to the person who typed it.
_PLAIN = [
    ("'\\t'", "a tab character; YAML indents with spaces only"),
    (
        "expected <block end>, but found '<scalar>'",
        "text after a complete value; check the quotes on this line and the lines above",
    ),
    ("expected <block end>", "this line is indented differently from the lines above it"),
    ("that cannot start any token", "a character that cannot start a value here"),
    (
        "mapping values are not allowed here",
        "a ':' where none can be; quote a value that contains ': ', or check the indentation",
    ),
    ("could not find expected ':'", "a key without ':' after it"),
]


@dataclass(frozen=True)
class Source:
    """Where each path of the document sits (1-based line and column of its key or item), and
    the source text of each number, which YAML read as int or float."""

    lines: dict[str, tuple[int, int]] = field(default_factory=dict)
    numbers: dict[str, str] = field(default_factory=dict)

    def line_of(self, path: str) -> tuple[int, int] | None:
        """The position of `path`, else of its nearest ancestor in the file."""
        while path:
            if path in self.lines:
                return self.lines[path]
            cut = max(path.rfind("."), path.rfind("["))
            path = path[:cut] if cut > 0 else ""
        return None


def read_yaml(path: Path, text: str) -> tuple[Any, Source]:
    """The document in `text` and its `Source`; a syntax error is a `ConfigError` at the
    mistake's line and column, quoting the line."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        document = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as err:
        raise ConfigError(_syntax(path, text, err)) from err
    finally:
        loader.dispose()
    source = Source()
    if node is not None:
        _walk(node, (), source)
    return document, source


def _walk(node: yaml.Node, where: tuple[str | int, ...], source: Source) -> None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            step = str(key.value) if isinstance(key, yaml.ScalarNode) else str(key)
            here = (*where, step)
            source.lines[path_of(here)] = _at(key)  # a repeated key: the later wins
            _walk(value, here, source)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            here = (*where, index)
            source.lines[path_of(here)] = _at(item)
            _walk(item, here, source)
    elif node.tag.endswith((":int", ":float")):
        source.numbers[path_of(where)] = str(node.value)


def _at(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _syntax(path: Path, text: str, err: yaml.YAMLError) -> str:
    problem = str(getattr(err, "problem", None) or err)
    context = str(getattr(err, "context", None) or "")
    mark = getattr(err, "problem_mark", None)
    # An unclosed quote or bracket is noticed where the file ends or the next key starts;
    # the mistake is where the quote or bracket opened.
    opened = getattr(err, "context_mark", None)
    unclosed = ("quoted scalar" in context and "escape" not in problem) or "flow " in context
    if opened is not None and unclosed:
        mark = opened
        closer = {"flow sequence": "]", "flow mapping": "}"}
        missing = next((c for k, c in closer.items() if k in context), None)
        problem = (
            f"this {text[opened.index]} is never closed with {missing}"
            if missing
            else "this quoted text is never closed (a missing closing quote)"
        )
    else:
        problem = next((plain for words, plain in _PLAIN if words in problem), problem)
    if mark is None:
        return f"{path}: not valid YAML: {problem}"
    lines = text.splitlines()
    line = lines[mark.line] if mark.line < len(lines) else ""
    return (
        f"{path}:{mark.line + 1}:{mark.column + 1}: not valid YAML: {problem}\n"
        f"    {line}\n    {' ' * mark.column}^"
    )
