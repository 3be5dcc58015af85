"""Console sign-in: the admin token buys a server-side session behind an opaque cookie.

The cookie holds a random session id, never the token (HttpOnly, SameSite=Strict, with an
expiry); each session carries its own CSRF token, which every state-changing request must send
back (a form field or the `X-CSRF-Token` header). Signing out forgets the session, so its
cookie is worthless from then on, even if copied. Sessions live in the daemon's memory: a
restart signs everyone out, which is what an operator expects of a restart.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiohttp import web

from sambung.clock import Clock

COOKIE = "sambung_console"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
SESSION_TTL = timedelta(hours=8)
# Enough for every operator and their tabs; the oldest session goes first beyond it.
MAX_SESSIONS = 256


@dataclass(frozen=True)
class Session:
    """One signed-in browser: its cookie id, its CSRF token, until when it holds."""

    id: str
    csrf: str
    expires_at: datetime


class Sessions:
    """The console's sessions, checked against the admin token at sign-in."""

    def __init__(self, token: str, clock: Clock, ttl: timedelta = SESSION_TTL) -> None:
        self._token = token.encode()
        self._clock = clock
        self._ttl = ttl
        self._sessions: dict[str, Session] = {}
        # What the next page of a session says once (an action's outcome), by session id.
        self._notices: dict[str, str] = {}

    def sign_in(self, given: str) -> Session | None:
        """A new session when `given` is the admin token (compared in constant time)."""
        # "replace": a form may carry text no UTF-8 can hold (a lone surrogate); not the token.
        if not hmac.compare_digest(given.encode("utf-8", "replace"), self._token):
            return None
        now = self._clock.now()
        self._sessions = {k: s for k, s in self._sessions.items() if s.expires_at > now}
        self._notices = {k: n for k, n in self._notices.items() if k in self._sessions}
        while len(self._sessions) >= MAX_SESSIONS:
            self._sessions.pop(next(iter(self._sessions)))
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now + self._ttl)
        self._sessions[session.id] = session
        return session

    def find(self, request: web.Request) -> Session | None:
        """The live session the request's cookie names, if any."""
        session = self._sessions.get(request.cookies.get(COOKIE, ""))
        if session is None:
            return None
        if session.expires_at <= self._clock.now():
            self._sessions.pop(session.id, None)
            return None
        return session

    def sign_out(self, session: Session) -> None:
        """Forget a session: its cookie no longer signs anyone in."""
        self._sessions.pop(session.id, None)
        self._notices.pop(session.id, None)

    def tell(self, session: Session, notice: str) -> None:
        """Have the session's next page say `notice`."""
        self._notices[session.id] = notice

    def told(self, session: Session) -> str | None:
        """The notice the session's page says now, once."""
        return self._notices.pop(session.id, None)


def csrf_ok(session: Session, given: str | None) -> bool:
    """Whether a state-changing request sent its session's CSRF token back."""
    if given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8", "replace"), session.csrf.encode())


def set_cookie(response: web.StreamResponse, session: Session, ttl: timedelta) -> None:
    """Give the browser its session cookie: script cannot read it, no other site sends it."""
    response.set_cookie(
        COOKIE,
        session.id,
        max_age=int(ttl.total_seconds()),
        path="/",
        httponly=True,
        samesite="Strict",
    )


def clear_cookie(response: web.StreamResponse) -> None:
    """Tell the browser to drop its session cookie."""
    response.del_cookie(COOKIE, path="/")
