"""Exact readers for vendor values: money as Decimal, times as aware datetimes, nested fields.

Every reader raises `InvalidRecord` naming the field, so a plugin's mapping code states what it
expects and core answers the sender with the exact field that was wrong.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from .errors import InvalidPayload, InvalidRecord

_MISSING = object()


def loads(body: bytes | str) -> Any:
    """Parse JSON with every non-integer number as an exact `Decimal` (never through float)."""
    try:
        return json.loads(body, parse_float=Decimal, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as err:
        raise InvalidPayload(f"body is not valid JSON: {err}") from err


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def require(payload: Any, path: str) -> Any:
    """The value at a dotted path (`data.items.0.qty`); missing or null is an `InvalidRecord`."""
    value = get(payload, path, _MISSING)
    if value is _MISSING or value is None:
        raise InvalidRecord("field required", field=path)
    return value


def get(payload: Any, path: str, default: Any = None) -> Any:
    """The value at a dotted path, or `default` when any step is missing."""
    node = payload
    for step in path.split("."):
        if isinstance(node, Mapping):
            if step not in node:
                return default
            node = node[step]
        elif isinstance(node, list) and step.isdigit():
            index = int(step)
            if index >= len(node):
                return default
            node = node[index]
        else:
            return default
    return node


def money(value: Any, field: str) -> Decimal:
    """An amount as an exact, finite `Decimal` from an int, a Decimal or a numeric string."""
    if isinstance(value, bool) or value is None:
        raise InvalidRecord(f"expected an amount, got {value!r}", field=field)
    if isinstance(value, float):
        # A float here means a caller parsed JSON the lossy way: refuse rather than guess.
        raise TypeError(f"{field}: amounts must never pass through float (use sambung.parse.loads)")
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            amount = Decimal(text)
        except InvalidOperation:
            raise InvalidRecord(f"not an amount: {value!r}", field=field) from None
    else:
        raise InvalidRecord(f"expected an amount, got {type(value).__name__}", field=field)
    if not amount.is_finite():
        raise InvalidRecord(f"not a finite amount: {value!r}", field=field)
    return amount


def optional_money(payload: Any, path: str) -> Decimal:
    """The amount at `path`, or zero when the vendor left it out or sent null."""
    value = get(payload, path)
    return Decimal(0) if value is None else money(value, path)


def amount(payload: Any, path: str, *, required: bool = True) -> Decimal:
    """A non-negative amount at `path` (zero when optional and absent): the unified model's
    amounts are positive and the record type says the direction."""
    value = money(require(payload, path), path) if required else optional_money(payload, path)
    if value < 0:
        raise InvalidRecord(f"must not be negative, got {value}", field=path)
    return value


def optional_text(payload: Any, path: str) -> str | None:
    """Text at `path`, or None when absent, null or blank (POS systems send "" for "not set")."""
    value = get(payload, path)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return text(value, path)


def optional_timestamp(payload: Any, path: str, tz: ZoneInfo) -> datetime | None:
    """A timestamp at `path`, or None when absent or null."""
    value = get(payload, path)
    return None if value is None else timestamp(value, tz, path)


def each(payload: Any, path: str) -> list[str]:
    """The dotted paths of every element of the list at `path` (none when absent)."""
    items = get(payload, path)
    if items is None:
        return []
    if not isinstance(items, list):
        raise InvalidRecord(f"expected a list, got {type(items).__name__}", field=path)
    return [f"{path}.{index}" for index in range(len(items))]


def timestamp(value: Any, tz: ZoneInfo, field: str) -> datetime:
    """An aware UTC datetime from ISO-8601 text or epoch seconds; naive text is read in `tz`."""
    if isinstance(value, bool) or value is None:
        raise InvalidRecord(f"expected a timestamp, got {value!r}", field=field)
    if isinstance(value, int | Decimal):
        try:
            return datetime.fromtimestamp(int(value), tz=UTC)
        except (OverflowError, ValueError, OSError):
            raise InvalidRecord(f"epoch seconds out of range: {value!r}", field=field) from None
    if not isinstance(value, str):
        raise InvalidRecord(f"expected a timestamp, got {type(value).__name__}", field=field)
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidRecord(f"not an ISO-8601 timestamp: {value!r}", field=field) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.astimezone(UTC)


def business_date(instant: datetime, tz: ZoneInfo) -> date:
    """The calendar day an instant falls on at the outlet."""
    return instant.astimezone(tz).date()


def text(value: Any, field: str) -> str:
    """A non-empty string; vendor ids that arrive as numbers are turned into text."""
    if isinstance(value, bool) or value is None:
        raise InvalidRecord(f"expected text, got {value!r}", field=field)
    if isinstance(value, int | Decimal):
        return str(value)
    if not isinstance(value, str) or not value.strip():
        raise InvalidRecord(f"expected non-empty text, got {value!r}", field=field)
    return value.strip()


def quantity(value: Any, field: str) -> Decimal:
    """A quantity: exact like money (kilograms of coffee beans are fractional)."""
    return money(value, field)
