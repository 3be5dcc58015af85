"""Hypothesis strategies for hostile input: JSON no encoder would write, and CSV cells no till
would export, built from realistic bodies and files so the parsers behind them are reached."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st


@dataclass(frozen=True)
class Verbatim:
    """JSON text emitted as written: spellings no Python value has (`1e300000`, `"\\ud800"`)."""

    text: str


@dataclass(frozen=True)
class Pairs:
    """A JSON object as its key/value pairs, so a key may appear twice."""

    items: tuple[tuple[str, Any], ...]


def emit(value: Any) -> str:
    """`value` as JSON text; `Verbatim` and `Pairs` go out as they are."""
    if isinstance(value, Verbatim):
        return value.text
    if isinstance(value, Pairs):
        return "{" + ", ".join(f"{json.dumps(k)}: {emit(v)}" for k, v in value.items) + "}"
    if isinstance(value, dict):
        return emit(Pairs(tuple(value.items())))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(emit(item) for item in value) + "]"
    if isinstance(value, Decimal):
        return str(value)  # `1E+5`, `NaN`, `-0.00`: whatever the Decimal spells
    if isinstance(value, float):
        return repr(value)  # `inf` and `nan` come out as bare words, not JSON: also hostile
    # json.dumps keeps a lone surrogate as its `\ud800` escape and NUL as `\u0000`.
    return json.dumps(value)


# Numbers at the edges, spelled as JSON numbers (or as the literals JSON does not have).
EDGE_NUMBERS = (
    "1e300000",
    "-1e300000",
    "1E-400000",
    "1e5",
    "-0",
    "-0.0",
    "0e0",
    "NaN",
    "Infinity",
    "-Infinity",
    "1" * 35,
    "9" * 29 + ".5",
    "-" + "9" * 40,
    "0." + "3" * 60,
    "27500." + "0" * 80 + "1",
    "1" + "0" * 5000,  # past Python's int-from-text limit
    "27500.000000000000000001",
    "1.7976931348623157e308",
    "5e-324",
    "2000000000",
    "-2000000000",
    "4102444800",  # 2100-01-01: the edge of a plausible epoch
)
# Text at the edges, as JSON string literals (escapes included).
EDGE_STRINGS = (
    '"\\ud800"',
    '"\\udfff"',
    '"TRX-\\udbff\\udfff"',
    '"\\u0000"',
    '"TRX\\u0000-1"',
    '"\u202eTRX-1"',
    '"e' + "\u0301" * 200 + '"',
    '"\U0001f600\U0001f44d\U0001f3fd"',
    '"\u0662\u0667\u0665\u0660\u0660"',  # 27500 in Arabic-Indic digits
    '"1_000"',
    '"1e5"',
    '"Rp 27.500,-"',
    '"27.500,50"',
    '"27,500.50"',
    '" "',
    '""',
    '"0001-01-01 00:00:00"',
    '"9999-12-31T23:59:59+14:00"',
    '"2026-02-30 10:00:00"',
    '"2026-11-26T20:15:00-25:00"',
    '"1e300000"',
    '"' + "x" * 20_000 + '"',
    '"\\"; DROP TABLE records; --"',
    '"=HYPERLINK(\\"http://example.invalid\\")"',
)


def nested(depth: int) -> Verbatim:
    """Arrays and objects nested `depth` deep."""
    return Verbatim(
        '{"a": ' * (depth // 2)
        + "[" * (depth - depth // 2)
        + "]" * (depth - depth // 2)
        + "}" * (depth // 2)
    )


def leaves() -> st.SearchStrategy[Any]:
    """One hostile value: an edge number or string, a wrong type, or plain random JSON."""
    return st.one_of(
        st.sampled_from(EDGE_NUMBERS).map(Verbatim),
        st.sampled_from(EDGE_STRINGS).map(Verbatim),
        st.sampled_from([None, True, False, [], {}, 0, -1, ""]),
        st.integers(min_value=-(10**40), max_value=10**40),
        st.decimals(allow_nan=True, allow_infinity=True, places=None),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=40),
        st.integers(min_value=2, max_value=50_000).map(nested),
    )


def json_values() -> st.SearchStrategy[Any]:
    """Random JSON documents whose leaves are hostile."""
    return st.recursive(
        leaves(),
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(st.text(max_size=12), children, max_size=4),
        ),
        max_leaves=12,
    )


Path = tuple[str | int, ...]


def paths(node: Any, at: Path = ()) -> list[Path]:
    """Every place in a parsed JSON document, the document itself first."""
    found = [at]
    if isinstance(node, dict):
        for key, value in node.items():
            found.extend(paths(value, (*at, key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.extend(paths(value, (*at, index)))
    return found


def _replace(node: Any, path: Path, change: Any) -> Any:
    """A copy of `node` with `change(old value)` at `path` (`change` returns the new one)."""
    if not path:
        return change(node)
    step, rest = path[0], path[1:]
    if isinstance(node, dict):
        return {k: (_replace(v, rest, change) if k == step else v) for k, v in node.items()}
    if isinstance(node, list):
        return [(_replace(v, rest, change) if i == step else v) for i, v in enumerate(node)]
    return node  # an earlier mutation made this a leaf: nothing left at the path


@st.composite
def mutated(draw: st.DrawFn, document: Any) -> Any:
    """`document` with one to three places replaced, deleted, duplicated or wrapped."""
    for _ in range(draw(st.integers(1, 3))):
        places = paths(document)
        path = draw(st.sampled_from(places))
        how = draw(st.sampled_from(["replace", "replace", "replace", "drop", "duplicate", "wrap"]))
        value = draw(leaves())
        if how == "replace" or not path:
            document = _replace(document, path, lambda _old, value=value: value)
        elif how == "wrap":
            document = _replace(
                document, path, lambda old: [old] if draw(st.booleans()) else {"": old}
            )
        else:
            parent, key = path[:-1], path[-1]

            def edit(container: Any, key: Any = key, how: str = how, value: Any = value) -> Any:
                if isinstance(container, dict):
                    items = tuple(container.items())
                    if how == "drop":
                        return {k: v for k, v in items if k != key}
                    # The same key twice: first the hostile value, then the original (or the
                    # other way round), so either "first wins" or "last wins" meets it.
                    twice = ((key, value), (key, container[key]))
                    ordered = twice if draw(st.booleans()) else twice[::-1]
                    return Pairs(tuple(kv for kv in items if kv[0] != key) + ordered)
                if isinstance(container, list) and how == "drop":
                    return [v for i, v in enumerate(container) if i != key]
                return container

            document = _replace(document, parent, edit)
    return document


@st.composite
def byte_damage(draw: st.DrawFn, body: bytes) -> bytes:
    """`body` cut short, with junk added, a BOM in front, or a byte changed."""
    how = draw(st.sampled_from(["cut", "append", "bom", "flip", "invalid_utf8"]))
    if how == "cut":
        return body[: draw(st.integers(0, max(len(body) - 1, 0)))]
    if how == "append":
        return body + draw(st.binary(min_size=1, max_size=16))
    if how == "bom":
        return b"\xef\xbb\xbf" + body
    if how == "invalid_utf8":
        at = draw(st.integers(0, len(body)))
        return (
            body[:at]
            + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00"]))
            + body[at:]
        )
    at = draw(st.integers(0, max(len(body) - 1, 0)))
    return body[:at] + bytes([draw(st.integers(0, 255))]) + body[at + 1 :]
