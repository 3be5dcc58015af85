"""Pydantic's validation errors in words a person reads: the one translator core uses, for the
YAML file and for the admin API's request bodies alike."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError
from pydantic_core import ErrorDetails

from .errors import ConfigProblem

Location = tuple[str | int, ...]


def explain(
    err: ValidationError,
    prefix: Location = (),
    model: type[BaseModel] | None = None,
    *,
    also_known: Iterable[str] = (),
) -> list[ConfigProblem]:
    """One problem per field of `err`, located by its path under `prefix`. `model` is what was
    validated: a misspelt key is then answered with the closest key it knows (and `also_known`)."""
    found: dict[str, ConfigProblem] = {}
    for error in err.errors(include_url=False):
        # pydantic adds union-member names like `tuple[...]`: not part of the YAML path
        location = tuple(s for s in error["loc"] if not (isinstance(s, str) and "[" in s))
        path = path_of((*prefix, *location))
        known: list[str] = []
        if error["type"] == "extra_forbidden" and model is not None:
            known = [*field_names(model_at(model, location[:-1])), *also_known]
        # The first problem a field has is the one to fix; a union's other members, or a
        # length check after an unset variable, would only repeat it in other words.
        found.setdefault(path, ConfigProblem(path, message(error, known)))
    return list(found.values())


# What a value must be, by pydantic's error type; `not …` then says what it was.
_MUST = {
    **dict.fromkeys(("int_parsing", "int_type", "int_from_float"), "must be a whole number"),
    **dict.fromkeys(("float_parsing", "float_type"), "must be a number"),
    **dict.fromkeys(("bool_parsing", "bool_type"), "must be true or false"),
    "string_type": "must be text",
    **dict.fromkeys(("list_type", "tuple_type", "set_type", "frozen_set_type"), "must be a list"),
    **dict.fromkeys(
        ("dict_type", "model_type", "model_attributes_type"),
        "must be a mapping of settings (key: value)",
    ),
}
_BOUNDS = {
    "greater_than": ("more than", "gt"),
    "greater_than_equal": ("at least", "ge"),
    "less_than": ("less than", "lt"),
    "less_than_equal": ("at most", "le"),
}
_LENGTHS = ("too_short", "string_too_short", "too_long", "string_too_long")


def message(error: ErrorDetails, known: Iterable[str] = ()) -> str:
    """One pydantic error as a predicate that follows its path (`token: must be …`)."""
    kind, ctx, given = error["type"], error.get("ctx", {}), error.get("input")
    if kind == "missing":
        return "is required, but not set"
    if kind == "extra_forbidden":
        key = str(error["loc"][-1]) if error["loc"] else ""
        names = sorted(set(known))
        hint = did_you_mean(key, names)
        if not hint and 0 < len(names) <= 12:
            hint = f" (known here: {', '.join(names)})"
        return f"is not a known setting{hint}"
    if kind in _LENGTHS:
        return _length_message(kind, ctx, given)
    if kind in _BOUNDS:
        word, key = _BOUNDS[kind]
        return f"must be {word} {ctx.get(key)}, not {given!r}"
    if kind in _MUST:
        return f"{_MUST[kind]}, not {_kind_of(given)}"
    if kind in ("literal_error", "enum"):
        return f"must be one of {ctx.get('expected')}, not {given!r}"
    if kind == "string_pattern_mismatch":
        return f"must match {ctx.get('pattern')}, not {given!r}"
    if kind.startswith("url_"):
        return f"must be a URL such as https://example.com, not {given!r}"
    if kind == "json_invalid":
        return f"is not valid JSON ({ctx.get('error', 'cannot be parsed')})"
    text = error["msg"]
    for noise in ("Value error, ", "Assertion failed, "):
        text = text.removeprefix(noise)
    return text[0].lower() + text[1:] if text[1:2].islower() else text


def _length_message(kind: str, ctx: dict[str, Any], given: object) -> str:
    """`must be at least 16 characters long; it has 5`, `must have at least 1 item; it has 0`."""
    textual = isinstance(given, str | SecretStr) or kind.startswith("string")
    shortest = kind.endswith("short")
    bound = ctx.get("min_length" if shortest else "max_length")
    if textual and shortest and bound == 1:
        return "must not be empty"
    unit = ("character" if textual else "item") + ("" if bound == 1 else "s")
    actual = ctx.get("actual_length", _length(given))
    has = f"; it has {actual}" if actual is not None else ""
    bounded = f"{'at least' if shortest else 'at most'} {bound} {unit}"
    return f"must be {bounded} long{has}" if textual else f"must have {bounded}{has}"


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """`; did you mean 'port'?` for the closest of `known`, else nothing."""
    close = difflib.get_close_matches(word, sorted(set(known)), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def field_names(model: type[BaseModel] | None) -> list[str]:
    """The YAML keys a model takes."""
    if model is None:
        return []
    return [info.alias or name for name, info in model.model_fields.items()]


def model_at(model: type[BaseModel], location: Location) -> type[BaseModel] | None:
    """The model that validates the mapping at `location` under `model` (None: not a model)."""
    current: Any = model
    for step in location:
        current = _step(current, step)
        if current is None:
            return None
    models = _models_in(current)
    return models[0] if models else None


def _step(annotation: Any, step: str | int) -> Any:
    for candidate in _members(annotation):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            if isinstance(step, str) and step in candidate.model_fields:
                return candidate.model_fields[step].annotation
            continue
        origin, args = typing.get_origin(candidate), typing.get_args(candidate)
        if isinstance(step, int) and origin in (list, tuple) and args:
            return args[0]
        if isinstance(step, str) and origin is dict and len(args) == 2:
            return args[1]
    return None


def _members(annotation: Any) -> list[Any]:
    """The types an annotation may be: a union's members, an `Annotated`'s type."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _members(arg)]
    return [annotation]


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    return [m for m in _members(annotation) if isinstance(m, type) and issubclass(m, BaseModel)]


def is_secret(annotation: Any) -> bool:
    """Whether a field holds a secret (`SecretStr`, optional, or a list or tuple of them)."""
    for member in _members(annotation):
        if member is SecretStr:
            return True
        origin = typing.get_origin(member)
        if origin in (list, tuple) and any(is_secret(a) for a in typing.get_args(member)):
            return True
    return False


def path_of(location: Location) -> str:
    """`('outlets', 1, 'connectors', 'moka')` → `outlets[1].connectors.moka`."""
    text = ""
    for step in location:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else str(step))
    return text


def request_problem(
    err: ValidationError | ValueError, model: type[BaseModel] | None = None
) -> dict[str, Any]:
    """The admin API's 400 body: `{"success": false, "error", "message", "problems"}`, the
    message one sentence naming every problem; `model` is what the request was read into."""
    if isinstance(err, ValidationError):
        problems = explain(err, model=model)
    else:
        problems = [ConfigProblem("", str(err))]
    return {
        "success": False,
        "error": "invalid_request",
        "message": sentence(problems),
        "problems": [{"path": p.path, "message": p.message} for p in problems],
    }


def sentence(problems: list[ConfigProblem]) -> str:
    """`The request is not valid: limit must be a whole number, not 'x'.`"""
    parts = [
        f"{p.path or 'the body'} {p.message}"
        if p.path or p.message.startswith("is ")
        else p.message
        for p in problems
    ]
    text = f"The request is not valid: {'; '.join(parts)}"
    return text if text.endswith(("?", ".")) else f"{text}."


def _length(value: object) -> int | None:
    if isinstance(value, SecretStr):
        return len(value.get_secret_value())
    return len(value) if isinstance(value, str | list | tuple | Mapping) else None


def _kind_of(value: object) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__
