"""The baseline for bench/ingest: aiohttp answering the webhook path with no work behind it.

Same interpreter, same aiohttp, same event loop (plain `asyncio.run`, as `sambung run` uses), same
`AppRunner`/`TCPSite` setup with no access log and the same backlog as the daemon's public
listener. The handler reads the body, as the daemon must before it can verify it, and answers a
small JSON 200. Whatever the daemon loses against this is the cost of sambung's own work:
verifying, parsing, mapping, committing and answering.

Run: `python bench/ingest/bare_server.py --port 18081`; stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from aiohttp import web

WEBHOOK_ROUTE = "/api/v1/integrations/webhooks/pawoon/{outlet}"


async def accept(request: web.Request) -> web.Response:
    """Read the whole body, then answer as a webhook receiver that stored it would."""
    await request.read()
    return web.json_response({"success": True})


def app() -> web.Application:
    """One POST route, at the daemon's webhook path."""
    application = web.Application()
    application.router.add_post(WEBHOOK_ROUTE, accept)
    return application


async def serve(host: str, port: int) -> None:
    """Listen until SIGTERM or SIGINT, then shut down cleanly."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    runner = web.AppRunner(app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, backlog=1024).start()
    try:
        await stopping.wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
