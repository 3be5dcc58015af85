"""Every secret the daemon knows, and the one step that masks them in text it logs, stores or
shows.

A vendor's error body may quote what it was sent: the bearer token, the client secret of a
token request, the HTTP Basic pair. Such text becomes an exception message, then a log line,
a `last_error`, a dead letter and a line of `sambung status`. Rather than trusting each call
site to leave secrets out, the daemon registers every secret here as it becomes known (the
YAML's at load and reload, tokens when they are fetched or read from the store, whatever an
outgoing request authenticates with), and `redact` runs where error text leaves the process:
the log processor (`logs.py`), the values written to the store (`store/base.py`) and the status
answers (`status.py`, `admin.py`).

Registering never logs: the values are kept here and nowhere else.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"
# Shorter values (`k`, `on`) would mask ordinary words: no real credential is this short.
MIN_LENGTH = 4
# Values learned at run time are kept, newest last, up to this many: a daemon refreshing tokens
# every hour for years must not grow without bound, and an echo quotes a token still in use
# (every request re-learns the credential it sends, so one in use is never the oldest). Each
# new value rebuilds the pattern: some 40 ms at this size, once per token obtained.
LEARNED_LIMIT = 128
# Authorization schemes whose credential is reusable (a per-request HMAC signature is not, and
# learning one per request would only churn the registry).
_SCHEME = re.compile(r"^\s*(Bearer|Basic|Token)\s+(\S+)\s*$", re.IGNORECASE)


def forms(value: str) -> set[str]:
    """`value` and the encodings an echo of it may use: URL-encoded (path or form), escaped
    in JSON, base64 (as in HTTP Basic with `value` as user name and an empty password)."""
    escaped = json.dumps(value)[1:-1]
    # PHP's json_encode escapes `/` as `\/`, and vendors written in PHP echo that way.
    found = {value, quote(value, safe=""), quote_plus(value), escaped, escaped.replace("/", "\\/")}
    for raw in (value, f"{value}:"):
        # Unpadded: an echo may strip the padding, and the mask then covers both.
        found.add(base64.b64encode(raw.encode()).decode().rstrip("="))
    return {f for f in found if len(f) >= MIN_LENGTH}


def basic_pair(user: str, password: str) -> str:
    """The base64 credential of HTTP Basic for `user:password`."""
    return base64.b64encode(f"{user}:{password}".encode()).decode()


class Secrets:
    """The secret values the process knows: the configured ones and those learned at run time."""

    def __init__(self, *, limit: int = LEARNED_LIMIT) -> None:
        self._lock = threading.Lock()
        self._limit = limit
        self._configured: frozenset[str] = frozenset()
        self._learned: OrderedDict[str, None] = OrderedDict()
        self._pattern: re.Pattern[str] | None = None

    def configure(self, values: Iterable[str]) -> None:
        """Replace the configured secrets (the YAML's, at load or reload)."""
        with self._lock:
            self._configured = frozenset(v for v in values if v and len(v) >= MIN_LENGTH)
            self._rebuild()

    def learn(self, *values: str | None) -> None:
        """Also mask these values (tokens obtained at run time, credentials sent)."""
        fresh = [v for v in values if v and len(v) >= MIN_LENGTH]
        with self._lock:
            changed = False
            for value in fresh:
                if value in self._learned:
                    self._learned.move_to_end(value)
                else:
                    self._learned[value] = None
                    changed = True
            while len(self._learned) > self._limit:
                self._learned.popitem(last=False)
            if changed:
                self._rebuild()

    def learn_authorization(self, header: str | None) -> None:
        """Mask the credential of an Authorization header value (`Bearer …`, `Basic …`), and
        for Basic also its decoded `user:password` and password."""
        found = _SCHEME.match(header or "")
        if found is None:
            return
        scheme, credential = found.group(1).lower(), found.group(2)
        values = [credential]
        if scheme == "basic":
            try:
                pair = base64.b64decode(credential, validate=True).decode()
            except (ValueError, UnicodeDecodeError):
                pair = ""
            values += [pair, pair.partition(":")[2]]
        self.learn(*values)

    def redact(self, text: str) -> str:
        """`text` with every known secret, in any of its forms, replaced by `***`."""
        pattern = self._pattern
        if pattern is None or not text:
            return text
        return pattern.sub(MASK, text)

    def redact_all(self, value: Any) -> Any:
        """A JSON-shaped value (dicts, lists, strings) with `redact` applied to every string."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {k: self.redact_all(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.redact_all(v) for v in value)
        return value

    def _rebuild(self) -> None:
        known = _all_forms(self._configured | self._learned.keys())
        self._pattern = re.compile(_trie_pattern(known)) if known else None


def _all_forms(values: Iterable[str]) -> set[str]:
    found: set[str] = set()
    for value in values:
        found |= forms(value)
    return found


def _trie_pattern(words: Iterable[str]) -> str:
    """One regex matching any of `words`, longest first, factored by common prefixes: a flat
    alternation of thousands of tokens would try each of them at every position of a log line.
    """
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}  # a word ends here

    def build(node: dict[str, Any]) -> str:
        ends = "" in node
        branches = [re.escape(char) + build(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        # Greedy: the longer word wins; where one ends, the rest is optional.
        return f"(?:{body})?" if ends else body

    return build(trie)


# The process's one registry: a daemon, or a CLI command showing what a daemon stored.
secrets = Secrets()


def redact(text: str) -> str:
    """`text` with every secret this process knows masked (see `Secrets.redact`)."""
    return secrets.redact(text)


def shorten(text: str, limit: int) -> str:
    """`text` redacted, then cut to `limit` characters: cut first, a secret's head would stay."""
    return secrets.redact(text)[:limit]


def redact_optional(text: str | None) -> str | None:
    """`redact` for a value that may be missing."""
    return None if text is None else secrets.redact(text)
