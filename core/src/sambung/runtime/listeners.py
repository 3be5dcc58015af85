"""What both listeners (public and admin) share: deadlines for slow senders, and malformed HTTP
from strangers told in one quiet line instead of a traceback.

aiohttp has no header or body timeout of its own. Two of its mechanisms give them:

- Headers: its keep-alive timer starts when a connection opens (and again after each answer)
  and closes the connection if no complete request has arrived when it fires; headers
  dribbled a byte at a time never complete one. `keepalive_timeout` is therefore the header
  deadline (and how long an idle connection is kept).
- Body: a timer per request, armed when the headers are in; when it fires before the body's
  end, the body stream is failed with `BodyTimeout`, so whatever the handler awaits on it
  (`read()`, a multipart part) raises, and the middleware answers 408 and closes. It is a
  `TimeoutError` on purpose: aiohttp drains an unread body after the answer and treats a
  timeout there as the end of draining, not as an unhandled error.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler, Middleware
from aiohttp.web_protocol import RequestPayloadError

from sambung.config import ListenerTimeouts

log = structlog.get_logger(__name__)


class BodyTimeout(TimeoutError):
    """The request body did not arrive within the listener's `body_timeout`."""


def body_deadline(seconds: float) -> Middleware:
    """Middleware answering 408 (and closing) when a body takes longer than `seconds`."""

    @web.middleware
    async def deadline(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.can_read_body:
            return await handler(request)
        timer = asyncio.get_running_loop().call_later(seconds, _expire, request.content, seconds)
        try:
            return await handler(request)
        except BodyTimeout:
            log.info("http.body_timeout", path=request.path, seconds=seconds)
            return _closing(408, "request_timeout", f"the body took longer than {seconds:g}s")
        except (RequestPayloadError, HttpProcessingError) as err:
            # A body that breaks HTTP's framing (a bad chunk, a short Content-Length): the
            # sender's fault, whoever it is.
            log.info("http.bad_body", path=request.path, error=type(err).__name__)
            return _closing(400, "bad_request", "the body is not valid HTTP")
        finally:
            timer.cancel()

    return deadline


def _expire(content: Any, seconds: float) -> None:
    if not content.is_eof():
        content.set_exception(BodyTimeout(f"body not received within {seconds:g}s"))


def _closing(status: int, error: str, message: str) -> web.Response:
    response = web.json_response(
        {"success": False, "error": error, "message": message}, status=status
    )
    response.force_close()
    return response


class _ServerLogger(logging.Logger):
    """aiohttp's `aiohttp.server` logger, but a request that is not valid HTTP (an
    unauthenticated stranger's garbage, a scanner, TLS on a plain port) is one info line with
    no traceback and none of the request's bytes; every other error is logged as aiohttp does."""

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        """Log `msg`, quietly when the error is malformed HTTP."""
        err = exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1]
        if isinstance(err, HttpProcessingError | RequestPayloadError | BodyTimeout):
            log.info("http.bad_request", status=getattr(err, "code", 400), error=type(err).__name__)
            return
        super().exception(msg, *args, exc_info=exc_info, **kwargs)


def _server_logger() -> logging.Logger:
    logger = _ServerLogger("aiohttp.server")
    # Not registered with logging's manager: hand records on as the registered one would.
    logger.parent = logging.getLogger("aiohttp")
    return logger


SERVER_LOGGER = _server_logger()


def app_runner(
    app: web.Application, timeouts: ListenerTimeouts, *, shutdown_timeout: float
) -> web.AppRunner:
    """A runner for one listener's app with its deadlines for slow senders."""
    app.middlewares.insert(0, body_deadline(timeouts.body_timeout.total_seconds()))
    return web.AppRunner(
        app,
        access_log=None,
        shutdown_timeout=shutdown_timeout,
        keepalive_timeout=timeouts.header_timeout.total_seconds(),
        logger=SERVER_LOGGER,
    )
