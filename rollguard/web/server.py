"""``rollguard web``: the status page and its JSON, served by aiohttp as the worker serves
``/metrics`` (:mod:`rollguard.streams.metrics_http`). The page polls the JSON; its script and styles
ship in this package (``rollguard/web/static``), nothing is loaded from elsewhere.

- ``GET /`` (``?service=NAME`` opens one service: the notifier links there);
- ``GET /api/services``: every service, one row each (:func:`rollguard.web.model.service_row`);
- ``GET /api/services/NAME``: one service in full (:func:`rollguard.web.model.service_page`).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import Any

import orjson
from aiohttp import web

from rollguard.actions.connect import async_redis_client
from rollguard.actions.keys import check_service
from rollguard.base.errors import ConfigError, RollguardError
from rollguard.streams.metrics_http import bind
from rollguard.web.settings import ADDR_VARIABLE, WebSettings
from rollguard.web.sources import AuditLog, MetricsScraper, StatusSource, following

STATIC = {"app.js": "text/javascript", "style.css": "text/css", "index.html": "text/html"}


def _static(name: str) -> bytes:
    return resources.files("rollguard.web").joinpath(f"static/{name}").read_bytes()


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS),
                        status=status, content_type="application/json",
                        headers={"Cache-Control": "no-store"})


async def _answer(work: Callable[[], Awaitable[Any]]) -> web.Response:
    try:
        return _json(await work())
    except ConfigError as exc:
        return _json({"error": str(exc)}, status=400)
    except RollguardError as exc:  # Redis away: the page says so and asks again
        return _json({"error": str(exc)}, status=503)


def application(source: StatusSource, refresh_s: float) -> web.Application:
    """The page's routes over ``source``."""
    files = {name: _static(name) for name in STATIC}
    page = files["index.html"].replace(b"{{refresh_ms}}", str(int(refresh_s * 1000)).encode())

    async def index(_: web.Request) -> web.Response:
        return web.Response(body=page, content_type="text/html")

    async def static(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in files:
            raise web.HTTPNotFound()
        return web.Response(body=files[name], content_type=STATIC[name])

    async def overview(_: web.Request) -> web.Response:
        return await _answer(source.overview)

    async def one(request: web.Request) -> web.Response:
        service = request.match_info["service"]
        return await _answer(lambda: source.page(check_service(service)))

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/api/services", overview)
    app.router.add_get("/api/services/{service}", one)
    return app


@contextlib.asynccontextmanager
async def serving(settings: WebSettings, services: tuple[str, ...] = (),
                  sock: socket.socket | None = None) -> AsyncIterator[StatusSource]:
    """Serve the page while the block runs (on ``sock``, else on ``settings.addr``)."""
    listening = sock or bind(settings.addr, ADDR_VARIABLE)
    client = async_redis_client(settings.redis_url)
    audit = AuditLog(settings.topic_audit, settings.kafka_bootstrap)
    scraper = MetricsScraper(settings.metrics_urls, settings.refresh_s)
    source = StatusSource(client, audit, scraper, services)
    runner = web.AppRunner(application(source, settings.refresh_s), access_log=None)
    await runner.setup()
    try:
        async with following(audit, scraper):
            await web.SockSite(runner, listening).start()
            yield source
    finally:
        await runner.cleanup()
        await client.aclose()
