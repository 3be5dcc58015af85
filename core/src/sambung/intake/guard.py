"""What every intake path checks of a connector's output, and how it keeps what it refuses.

Webhooks, polling and file drop each hand the store what a plugin mapped. A connector may only
map records for its own outlet and source system (a plugin bug must not write into another
outlet's books), and whatever is refused becomes a dead letter in the same shape on every path.
"""

from __future__ import annotations

from collections.abc import Iterable

from sambung.errors import InvalidRecord
from sambung.store import DeadLetterIn
from sambung.store.base import Stage, printable


def ensure_own(keys: Iterable[tuple[str, str]], outlet: str, connector: str) -> None:
    """Raise `InvalidRecord` unless every `(outlet, source_system)` is this connection's."""
    for record_outlet, source_system in keys:
        if record_outlet != outlet or source_system != connector:
            raise InvalidRecord(
                f"connector {connector} mapped a record for {record_outlet}/{source_system},"
                f" expected {outlet}/{connector}"
            )


def rejection(
    stage: Stage,
    outlet: str,
    connector: str,
    *,
    error_type: str,
    error: str,
    field: str | None = None,
    payload: str | None = None,
) -> DeadLetterIn:
    """The dead letter for something refused at intake; its text kept storable, whatever the
    sender's bytes held (a lone surrogate, a NUL)."""
    return DeadLetterIn(
        stage=stage,
        outlet=outlet,
        connector=connector,
        error_type=error_type,
        error=printable(error),
        field=printable(field) if field else field,
        payload=payload,
    )
