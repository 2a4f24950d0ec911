"""``GET /metrics`` on the worker's own event loop.

Served by aiohttp in the loop the agents run in, not by a thread: a scrape then reads the
partition loop between two messages, never in the middle of one. Only the formatting of
what it read, most of a scrape's cost, runs in a thread (for 1,000 services, about 23,000
samples: some 0.1 s of reading on the loop, 0.15 s of formatting beside it). The socket is
bound before the worker starts, so an address in use stops it at start-up with the variable
named. The body is the classic text format (0.0.4), which every Prometheus version reads.
"""

from __future__ import annotations

import asyncio
import socket

from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from rollguard.errors import ConfigError
from streams.metrics import WorkerMetrics, render

VARIABLE = "ROLLGUARD_METRICS_ADDR"


def bind(addr: tuple[str, int], variable: str = VARIABLE) -> socket.socket:
    """A listening socket on ``addr``; ConfigError naming ``variable`` when it cannot be."""
    host, port = addr
    try:
        return socket.create_server((host, port), family=_family(host), backlog=16)
    except OSError as exc:
        raise ConfigError(f"{variable}: cannot listen on {host}:{port}: {exc.strerror}") from exc


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


async def serve(sock: socket.socket, metrics: WorkerMetrics) -> web.AppRunner:
    """Serve ``metrics`` on ``sock`` until the returned runner is cleaned up."""

    async def scrape(_: web.Request) -> web.Response:
        families = metrics.snapshot()
        body = await asyncio.get_running_loop().run_in_executor(None, render, families)
        return web.Response(body=body,
                            headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner
