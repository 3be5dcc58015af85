"""A fake Telegram Bot API: `POST /bot<token>/sendMessage` as the real one answers it.

Serve it (`await fake.start()`, or in a thread with `ReceiverThread(fake)`) and set a
`telegram` channel's `base_url` to `fake.url`. It accepts only its own bot token (401
otherwise, as Telegram does), records every message it accepted, and can be told to fail
the next calls (`fail(502, times=2)`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class SentMessage:
    """One accepted `sendMessage` call."""

    chat_id: str
    text: str
    body: dict[str, Any]


class FakeTelegram:
    """The Bot API's `sendMessage`, for one bot."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.messages: list[SentMessage] = []
        self.refused = 0
        self._failures: list[int] = []
        self._lock = threading.Lock()
        self._runner: web.AppRunner | None = None
        self.url = ""

    def fail(self, status: int, *, times: int = 1) -> None:
        """Answer the next `times` well-formed calls with `status` and Telegram's error body."""
        with self._lock:
            self._failures.extend([status] * times)

    def texts(self) -> list[str]:
        """The text of every accepted message, in order."""
        with self._lock:
            return [m.text for m in self.messages]

    def app(self) -> web.Application:
        """The aiohttp app."""
        app = web.Application()
        app.router.add_post("/bot{token}/sendMessage", self._send_message)
        return app

    async def _send_message(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            with self._lock:
                self.refused += 1
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        try:
            body = await request.json()
            chat_id, text = str(body["chat_id"]), str(body["text"])
        except (ValueError, KeyError, TypeError):
            return web.json_response(
                {
                    "ok": False,
                    "error_code": 400,
                    "description": "Bad Request: message text is empty",
                },
                status=400,
            )
        with self._lock:
            failure = self._failures.pop(0) if self._failures else None
            if failure is None:
                self.messages.append(SentMessage(chat_id, text, body))
                message_id = len(self.messages)
        if failure is not None:
            return web.json_response(
                {"ok": False, "error_code": failure, "description": "Bad Gateway"}, status=failure
            )
        result = {"message_id": message_id, "chat": {"id": chat_id}, "text": text}
        return web.json_response({"ok": True, "result": result})

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on the running loop; returns the base URL for the channel's `base_url`."""
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port, reuse_address=True).start()
        self.url = f"http://{host}:{self._runner.addresses[0][1]}"
        return self.url

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
