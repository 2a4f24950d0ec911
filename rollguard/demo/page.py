"""The demo's status page: ``rollguard web`` in the demo's own process, on the demo's run
(its audit topic, its worker's metrics), showing the demo's service."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator

from rich.console import Console

from rollguard.base.config import kafka_bootstrap, redis_url
from rollguard.base.errors import ConfigError
from rollguard.demo.isolated import WorkerRun
from rollguard.demo.ports import as_text, demo_metrics_addr
from rollguard.streams.metrics_http import bind
from rollguard.streams.settings import host_port
from rollguard.web.server import serving
from rollguard.web.settings import ADDR_VARIABLE, DEFAULT_ADDR, WebSettings

REFRESH_S = 1.0  # the demo's time runs fast: the page and the charts follow every second


def _listen(addr: tuple[str, int]) -> socket.socket:
    """The page's socket: on ``addr``, else (in use: another demo or ``rollguard web`` runs)
    on a free port of the same host."""
    try:
        return bind(addr, ADDR_VARIABLE)
    except ConfigError:
        return bind((addr[0], 0), ADDR_VARIABLE)


@contextlib.asynccontextmanager
async def status_page(run: WorkerRun, service: str,
                      console: Console) -> AsyncIterator[tuple[dict[str, str], str]]:
    """Serve the page while the block runs; yields the environment the demo's worker needs
    (a metrics address of its own, which the page scrapes) and the page's address."""
    addr, moved = demo_metrics_addr()
    metrics = as_text(addr)
    wanted = host_port(ADDR_VARIABLE, os.environ.get(ADDR_VARIABLE, DEFAULT_ADDR))
    sock = _listen(wanted or ("127.0.0.1", 8471))
    host, port = sock.getsockname()[:2]
    scraped = (f"http://{metrics}/metrics",) if metrics else ()
    settings = WebSettings(addr=(host, port), metrics_urls=scraped,
                           redis_url=redis_url(), kafka_bootstrap=kafka_bootstrap(),
                           topic_audit=run.topic("audit"), refresh_s=REFRESH_S)
    async with serving(settings, (service,), sock):
        console.print(f"status page: {settings.address}?service={service}", soft_wrap=True)
        if metrics:
            console.print(f"the worker's metrics: http://{metrics}/metrics"
                          + (" (the usual port is taken: another worker?)" if moved else ""))
        yield {"ROLLGUARD_METRICS_ADDR": metrics}, settings.address


async def hold(seconds: float, console: Console) -> None:
    """Keep serving the page a while after the demo (Ctrl-C ends it sooner)."""
    if seconds > 0:
        console.print(f"the status page stays up for {seconds:.0f} s (Ctrl-C to end)")
        await asyncio.sleep(seconds)
