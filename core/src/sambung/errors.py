"""The typed errors of sambung: each class has exactly one behaviour, decided by core."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


class SambungError(Exception):
    """Base of every error sambung raises on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in the YAML, located by its path (`outlets[1].connectors.moka.mode`)."""

    path: str
    message: str
    # Where the path sits in the YAML file (1-based), when it is there.
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}" if self.path else self.message
        return f"{text} (line {self.line})" if self.line is not None else text


class ConfigError(SambungError):
    """The configuration is unusable: refuse to start and name every problem."""

    def __init__(self, problems: list[ConfigProblem] | str) -> None:
        if isinstance(problems, str):
            problems = [ConfigProblem("", problems)]
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class StoreInUse(ConfigError):
    """Another process has the SQLite store open (the daemon, most likely)."""


class ListenerUnavailable(SambungError):
    """A listener cannot take its address (the port is in use, say): the daemon cannot start
    now, though the file is valid; `setting` names the YAML setting to change."""

    def __init__(self, setting: str, message: str) -> None:
        self.setting = setting
        super().__init__(f"{setting}: {message}")


class BackupRefused(SambungError):
    """A backup or restore cannot go ahead (a damaged archive, the store in use, a store in the
    way): say why in one line and exit non-zero, touching nothing."""


class SignatureError(SambungError):
    """A webhook failed authentication: answer 401 and store nothing."""


class InvalidPayload(SambungError):
    """An authentic request whose body cannot be read at all (not JSON): 400, kept in the DLQ."""


class InvalidRecord(SambungError):
    """A payload that cannot be mapped: that record goes to the DLQ (422 for a webhook)."""

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        self.reason = reason
        self.field = field
        super().__init__(f"{field}: {reason}" if field else reason)


class RetriableError(SambungError):
    """A passing failure (timeout, 5xx, 429): back off and try again later."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status: int | None = None,
        body: str | None = None,
    ) -> None:
        self.retry_after = retry_after
        # What a destination answered, when it did (kept with the delivery attempt).
        self.status = status
        self.body = body
        super().__init__(message)


class AuthError(SambungError):
    """The vendor refused our credentials: refresh once, then mark the connection needs_reauth."""


class CredentialsUnreadable(AuthError):
    """A stored credential does not decrypt under this key (the key changed): reconnect."""


class InvalidGrant(AuthError):
    """The vendor refused the code or refresh token (`invalid_grant`): reconnect needed."""


class StoreUnavailable(SambungError):
    """The store could not commit: the sender must retry later (503), nothing was acknowledged."""


class LeaseLost(SambungError):
    """A write fenced by a lease found the lease no longer this replica's: nothing of it was
    committed, and the work the lease guards must stop (another replica may be doing it now)."""


class DeliveryRejected(SambungError):
    """The destination refused this item for good (a 4xx): dead-letter it at once, no retry."""

    def __init__(self, message: str, *, status: int | None = None, body: str = "") -> None:
        self.status = status
        self.body = body
        super().__init__(message)


class SinkGone(SambungError):
    """The destination asked never to be sent to again (HTTP 410): disable the sink and alert."""


class SinkPaused(SambungError):
    """The destination refuses everything until a known time (a monthly quota is used up): pause
    the sink until `until`, alert once, and try the item again then."""

    def __init__(self, message: str, *, until: datetime) -> None:
        self.until = until
        super().__init__(message)


class SinkDisconnected(SinkPaused):
    """The sink's OAuth credentials are missing or refused for good (`invalid_grant`): hold the
    sink (rows wait in the outbox, never dead-lettered) until it is connected again, trying
    again at `until`; the message names the `sambung connect --sink` command to run."""


class RequestRejected(SambungError):
    """The vendor refused the request itself (a 4xx other than 401, 408 and 429): retrying the
    same request will not help, so the connection is marked failing with the vendor's message."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class PluginError(SambungError):
    """A plugin registered something unfit; the plugin is reported and skipped."""


class FileError(SambungError):
    """The file as a whole cannot be read (no header, a required column missing, bad bytes)."""


class EncodingError(FileError):
    """Bytes that are not text in the encoding chosen from the start of the file."""


class UnknownConnection(SambungError):
    """No such connection (outlet and connector) is configured: the admin API answers 404."""


class NotPolled(SambungError):
    """The connection exists but is not polled (no cursor to show or set, no window to
    backfill), or its poll loop does not run in this daemon: the admin API answers 409."""
