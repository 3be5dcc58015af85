"""A listener that cannot start says why, under the setting to change, and is not a ConfigError
(the file is valid; the port is taken now)."""

from __future__ import annotations

import errno
import socket

import pytest
from aiohttp import web
from sambung.errors import ConfigError, ListenerUnavailable
from sambung.runtime.daemon import _unavailable


async def test_a_port_in_use_names_the_port_setting() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        runner = web.AppRunner(web.Application())
        await runner.setup()
        try:
            with pytest.raises(OSError) as caught:
                await web.TCPSite(runner, "127.0.0.1", port).start()
        finally:
            await runner.cleanup()
    problem = _unavailable("server.admin", "127.0.0.1", port, caught.value)
    assert not isinstance(problem, ConfigError)
    assert str(problem) == (
        f"server.admin.port: port {port} on 127.0.0.1 is in use by another program "
        "(another sambung?); stop it, or choose another port"
    )


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (errno.EACCES, "server.public.port: not allowed to listen on port 80 on 10.0.0.9"),
        (errno.EADDRNOTAVAIL, "server.public.host: 10.0.0.9 is not an address of this machine"),
        (errno.ENOBUFS, "server.public: cannot listen on 10.0.0.9:80: "),
    ],
)
def test_other_listen_failures_name_their_setting(code: int, expected: str) -> None:
    problem = _unavailable("server.public", "10.0.0.9", 80, OSError(code, "no"))
    assert isinstance(problem, ListenerUnavailable)
    assert str(problem).startswith(expected)
