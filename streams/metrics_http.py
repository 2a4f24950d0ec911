"""``GET /metrics``, ``/healthz`` and ``/readyz`` on the worker's own event loop.

Served by aiohttp in the loop the agents run in, not by a thread: a scrape then reads the
partition loop between two messages, never in the middle of one. Only the formatting of
what it read, most of a scrape's cost, runs in a thread (for 1,000 services, about 23,000
samples: some 0.1 s of reading on the loop, 0.15 s of formatting beside it). The socket is
bound before the worker starts, so an address in use stops it at start-up with the variable
named. The body is the classic text format (0.0.4), which every Prometheus version reads.

``/healthz`` (liveness) answers 200 whenever the loop runs: a worker whose loop is stuck
stops answering, and a probe's timeout restarts it. ``/readyz`` (readiness) answers 200 once
``not_ready`` returns None, else 503 with its reason as the body (docs/deploy.md).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Protocol

from aiohttp import web
from prometheus_client.core import Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from rollguard.base.errors import ConfigError
from rollguard.streams.metrics import render

VARIABLE = "ROLLGUARD_METRICS_ADDR"


class Snapshots(Protocol):
    """What the endpoint serves: the worker's metrics, or the notifier's."""

    def snapshot(self) -> list[Metric]: ...


def bind(addr: tuple[str, int], variable: str = VARIABLE) -> socket.socket:
    """A listening socket on ``addr``; ConfigError naming ``variable`` when it cannot be."""
    host, port = addr
    try:
        return socket.create_server((host, port), family=_family(host), backlog=16)
    except OSError as exc:
        raise ConfigError(f"{variable}: cannot listen on {host}:{port}: {exc.strerror}") from exc


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


async def serve(sock: socket.socket, metrics: Snapshots,
                not_ready: Callable[[], str | None] = lambda: None) -> web.AppRunner:
    """Serve ``metrics`` and the probes on ``sock`` until the returned runner is cleaned up;
    ``not_ready`` says why the worker is not ready yet (None: ready)."""

    async def scrape(_: web.Request) -> web.Response:
        families = metrics.snapshot()
        body = await asyncio.get_running_loop().run_in_executor(None, render, families)
        return web.Response(body=body,
                            headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        reason = not_ready()
        if reason is None:
            return web.Response(text="ready\n")
        return web.Response(status=503, text=f"not ready: {reason}\n")

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner
