"""Exact readers for vendor values: money as Decimal, times as aware datetimes, nested fields.

Every reader raises `InvalidRecord` naming the field, so a plugin's mapping code states what it
expects and core answers the sender with the exact field that was wrong.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from .errors import InvalidPayload, InvalidRecord

_MISSING = object()
_ZERO = Decimal(0)

# Bounds checked before any conversion, so a hostile number costs nothing to refuse: no till
# or gateway needs more, and `1e300000` or 5,000 decimals would otherwise cost CPU downstream.
MAX_AMOUNT_DIGITS = 20  # before the decimal point: far beyond any rupiah total
MAX_AMOUNT_DECIMALS = 12
MAX_TEXT_CHARS = 10_000
# Plausible instants for a sale or a payment: anything outside is a vendor or sender error.
MIN_YEAR, MAX_YEAR = 2000, 2100
MIN_EPOCH = int(datetime(MIN_YEAR, 1, 1, tzinfo=UTC).timestamp())
MAX_EPOCH = int(datetime(MAX_YEAR, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp())
# Amounts as text: plain (`-1234.50`), or grouped the Indonesian (`1.234.567,50`) or English
# (`1,234,567.50`) way. ASCII digits only: `\d` would let Arabic-Indic digits through.
_PLAIN = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")
_GROUPED_ID = re.compile(r"[+-]?[0-9]{1,3}(?:\.[0-9]{3})+(?:,[0-9]+)?|[+-]?[0-9]+,[0-9]+")
_GROUPED_EN = re.compile(r"[+-]?[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?")


def loads(body: bytes | str) -> Any:
    """Parse JSON with every non-integer number as an exact `Decimal` (never through float)."""
    try:
        # JSON on the wire is UTF-8 (RFC 8259); -sig also accepts a BOM, as json.loads does.
        text = body.decode("utf-8-sig") if isinstance(body, bytes) else body
        return _DECODER.decode(text)
    except (ValueError, UnicodeDecodeError) as err:
        raise InvalidPayload(f"body is not valid JSON: {err}") from err
    except RecursionError:
        # Arrays or objects nested deeper than the decoder can follow (`[[[[…` 100,000 deep):
        # the sender's fault like any other unreadable body, and no traceback worth keeping.
        raise InvalidPayload("body is not valid JSON: nested too deeply") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


# One decoder for the process: json.loads with hooks builds a new one on every call.
_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_reject_constant)


def dumps(payload: Any) -> bytes:
    """JSON as vendors write it, the inverse of `loads`: every `Decimal` a bare, exact number."""
    return _BARE.sub(r"\1", json.dumps(_mark(payload), ensure_ascii=False)).encode()


# A Decimal is first written as a string marked by a leading NUL, then unquoted: a real string
# of a NUL followed by nothing but digits is not something vendors send.
_BARE = re.compile(r'"\\u0000(-?[0-9]+(?:\.[0-9]+)?)"')


def _mark(value: Any) -> Any:
    if isinstance(value, Decimal):
        return "\u0000" + format(value, "f")
    if isinstance(value, dict):
        return {key: _mark(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_mark(item) for item in value]
    return value


def require(node: Any, key: str, *, at: str = "") -> Any:
    """The value at `key` (a dotted path like `data.items.0.qty` works too); missing or null is
    an `InvalidRecord` naming the field. `at` is where `node` sits in the body, for that name."""
    value = _lookup(node, key)
    if value is _MISSING or value is None:
        raise InvalidRecord("field required", field=_path(at, key))
    return value


def _lookup(node: Any, key: str) -> Any:
    # The common case, one key into a plain dict, skips the path walk entirely: mappings read a
    # couple of dozen fields per webhook.
    if type(node) is dict and "." not in key:
        return node.get(key, _MISSING)
    return get(node, key, _MISSING)


def _path(at: str, key: str) -> str:
    return f"{at}.{key}" if at else key


def get(payload: Any, path: str, default: Any = None) -> Any:
    """The value at a dotted path, or `default` when any step is missing."""
    node = payload
    for step, index in _steps(path):
        # Exact type checks: this runs dozens of times per webhook, and vendor JSON is made of
        # plain dicts and lists (an ABC isinstance check costs several times more).
        kind = type(node)
        if kind is dict or (kind is not list and isinstance(node, Mapping)):
            if step not in node:
                return default
            node = node[step]
        elif kind is list and index is not None:
            if index >= len(node):
                return default
            node = node[index]
        else:
            return default
    return node


@lru_cache(maxsize=4096)
def _steps(path: str) -> tuple[tuple[str, int | None], ...]:
    """A dotted path split once: each step with its list index when it is a number."""
    return tuple((step, int(step) if step.isdigit() else None) for step in path.split("."))


def money(value: Any, field: str) -> Decimal:
    """An amount as an exact, finite `Decimal` from an int, a Decimal or a numeric string."""
    if type(value) is int:  # most amounts a till sends: no decimals to bound, no tuple to build
        amount = Decimal(value)
        if value and amount.adjusted() >= MAX_AMOUNT_DIGITS:
            raise InvalidRecord(f"amount has more than {MAX_AMOUNT_DIGITS} digits", field=field)
        return amount
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
        amount = _amount_text(value, field)
    else:
        raise InvalidRecord(f"expected an amount, got {type(value).__name__}", field=field)
    if not amount.is_finite():
        raise InvalidRecord(f"not a finite amount: {_short(value)}", field=field)
    return bounded_amount(amount, field)


def bounded_amount(amount: Decimal, field: str) -> Decimal:
    """`amount` unchanged if its digits fit the bounds every amount is held to, else an error."""
    exponent = amount.as_tuple().exponent
    if not isinstance(exponent, int):
        raise InvalidRecord(f"not a finite amount: {amount!r}", field=field)
    if amount and amount.adjusted() >= MAX_AMOUNT_DIGITS:
        raise InvalidRecord(f"amount has more than {MAX_AMOUNT_DIGITS} digits", field=field)
    # Trailing zeros are no precision (755.0125000): only refuse digits that carry value.
    if -exponent > MAX_AMOUNT_DECIMALS and -_exponent(amount.normalize()) > MAX_AMOUNT_DECIMALS:
        raise InvalidRecord(
            f"amount has more than {MAX_AMOUNT_DECIMALS} decimal places", field=field
        )
    return amount


def _exponent(amount: Decimal) -> int:
    exponent = amount.as_tuple().exponent
    return exponent if isinstance(exponent, int) else 0


def _amount_text(value: str, field: str) -> Decimal:
    text = value.strip()
    if len(text) > 2 * (MAX_AMOUNT_DIGITS + MAX_AMOUNT_DECIMALS):
        raise InvalidRecord(f"not an amount: {_short(value)}", field=field)
    if _PLAIN.fullmatch(text):
        plain = text
    elif _GROUPED_ID.fullmatch(text):
        plain = text.replace(".", "").replace(",", ".")
    elif _GROUPED_EN.fullmatch(text):
        plain = text.replace(",", "")
    else:
        raise InvalidRecord(
            f"not an amount: {_short(value)} (expected digits like 1234567.50, "
            "1.234.567,50 or 1,234,567.50)",
            field=field,
        )
    try:
        return Decimal(plain)
    except InvalidOperation:  # pragma: no cover - the patterns admit only valid decimals
        raise InvalidRecord(f"not an amount: {_short(value)}", field=field) from None


def _short(value: Any) -> str:
    """A value for an error message, cut so a huge cell does not make a huge message."""
    shown = repr(value)
    return shown if len(shown) <= 80 else f"{shown[:60]}… ({len(shown)} characters)"


def optional_money(node: Any, key: str, *, at: str = "") -> Decimal:
    """The amount at `key`, or zero when the vendor left it out or sent null."""
    value = _lookup(node, key)
    return _ZERO if value is _MISSING or value is None else money(value, _path(at, key))


def amount(node: Any, key: str, *, required: bool = True, at: str = "") -> Decimal:
    """A non-negative amount at `key` (zero when optional and absent): the unified model's
    amounts are positive and the record type says the direction."""
    path = _path(at, key)
    value = _lookup(node, key)
    if value is _MISSING or value is None:
        if required:
            raise InvalidRecord("field required", field=path)
        return _ZERO
    result = money(value, path)
    if result < 0:
        raise InvalidRecord(f"must not be negative, got {result}", field=path)
    return result


def optional_text(node: Any, key: str, *, at: str = "") -> str | None:
    """Text at `key`, or None when absent, null or blank (POS systems send "" for "not set")."""
    value = _lookup(node, key)
    if value is _MISSING or value is None or (isinstance(value, str) and not value.strip()):
        return None
    return text(value, _path(at, key))


def optional_timestamp(node: Any, key: str, tz: ZoneInfo, *, at: str = "") -> datetime | None:
    """A timestamp at `key`, or None when absent or null."""
    value = _lookup(node, key)
    return None if value is _MISSING or value is None else timestamp(value, tz, _path(at, key))


def each(node: Any, key: str, *, at: str = "") -> list[tuple[Any, str]]:
    """Every element of the list at `key` with its own path (`data.items.2`); none if absent."""
    path = _path(at, key)
    items = _lookup(node, key)
    if items is _MISSING or items is None:
        return []
    if type(items) is not list:
        raise InvalidRecord(f"expected a list, got {type(items).__name__}", field=path)
    return [(item, f"{path}.{index}") for index, item in enumerate(items)]


def mapping(node: Any, key: str, *, at: str = "") -> dict[str, Any]:
    """The JSON object at `key`, to read further fields from; anything else is an error."""
    value = require(node, key, at=at)
    if type(value) is not dict:
        raise InvalidRecord(f"expected an object, got {type(value).__name__}", field=_path(at, key))
    return value


def timestamp(value: Any, tz: ZoneInfo, field: str) -> datetime:
    """An aware UTC datetime from ISO-8601 text or epoch seconds; naive text is read in `tz`."""
    if isinstance(value, bool) or value is None:
        raise InvalidRecord(f"expected a timestamp, got {value!r}", field=field)
    if isinstance(value, int | Decimal):
        # Compared before converting: int(Decimal("1e300000")) alone takes seconds.
        if not (isinstance(value, int) or value.is_finite()) or not (
            MIN_EPOCH <= value <= MAX_EPOCH
        ):
            raise InvalidRecord(
                f"epoch seconds outside {MIN_YEAR}..{MAX_YEAR}: {_short(value)}", field=field
            )
        return datetime.fromtimestamp(int(value), tz=UTC)
    if not isinstance(value, str):
        raise InvalidRecord(f"expected a timestamp, got {type(value).__name__}", field=field)
    text = value.strip()
    try:
        if len(text) > 64:
            raise ValueError("too long")
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRecord(f"not an ISO-8601 timestamp: {_short(value)}", field=field) from None
    return plausible(parsed, tz, field)


def plausible(moment: datetime, tz: ZoneInfo, field: str) -> datetime:
    """`moment` in UTC (a naive one read in `tz`) if it falls in the years records may carry."""
    # Checked on the wall-clock year first: 0001-01-01 or 9999-12-31 overflow when moved to UTC.
    if not MIN_YEAR <= moment.year <= MAX_YEAR:
        raise InvalidRecord(f"year {moment.year} is outside {MIN_YEAR}..{MAX_YEAR}", field=field)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.astimezone(UTC)


def business_date(instant: datetime, tz: ZoneInfo) -> date:
    """The calendar day an instant falls on at the outlet."""
    return instant.astimezone(tz).date()


def text(value: Any, field: str) -> str:
    """A non-empty string; vendor ids that arrive as numbers are turned into text."""
    if isinstance(value, bool) or value is None:
        raise InvalidRecord(f"expected text, got {value!r}", field=field)
    if isinstance(value, int | Decimal):
        if isinstance(value, Decimal) and not value.is_finite():
            raise InvalidRecord(f"expected text, got {value!r}", field=field)
        spelled = str(value)
        if len(spelled) > 200:  # the longest id a record keeps (models.ExternalId)
            raise InvalidRecord(f"id longer than 200 digits: {_short(value)}", field=field)
        return spelled
    if not isinstance(value, str) or not value.strip():
        raise InvalidRecord(f"expected non-empty text, got {_short(value)}", field=field)
    if len(value) > MAX_TEXT_CHARS:
        raise InvalidRecord(f"text longer than {MAX_TEXT_CHARS} characters", field=field)
    return value.strip()


def quantity(value: Any, field: str) -> Decimal:
    """A quantity: exact like money (kilograms of coffee beans are fractional)."""
    return money(value, field)
