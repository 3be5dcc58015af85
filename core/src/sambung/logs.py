"""Structured logging: JSON lines off a terminal, readable text on one, secrets never printed."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from .redaction import MASK, secrets

REDACTED = MASK
# Keys whose values are secret whatever they contain.
_SECRET_KEY = re.compile(
    r"secret|token|password|passwd|signature|authorization|api_key|apikey", re.IGNORECASE
)


class Redactor:
    """A structlog processor that masks secret-looking keys and every known secret value
    (`redaction.secrets`), inside nested lists and dicts and rendered tracebacks too."""

    def __call__(self, _logger: Any, _name: str, event: MutableMapping[str, Any]) -> Any:
        """Mask in place and hand the event on."""
        for key, value in event.items():
            if _SECRET_KEY.search(key) and value not in (None, "", False):
                event[key] = REDACTED
            elif isinstance(value, str | list | tuple | dict):
                event[key] = secrets.redact_all(value)
            elif isinstance(value, BaseException):  # rendered from its message otherwise
                event[key] = secrets.redact(f"{type(value).__name__}: {value}")
        return event


redactor = Redactor()


def configure(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Set up structlog (and the stdlib loggers of our libraries) for the whole process."""
    stream = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    numeric = logging.getLevelName(level.upper())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        # Tracebacks rendered to text before the redactor, on a terminal too: an exception's
        # message may quote a vendor's echo of a secret.
        structlog.processors.format_exc_info,
        redactor,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=True,
    )
    # aiohttp and asyncio log through the stdlib: render them like ours, redacted the same way.
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.WARNING))
