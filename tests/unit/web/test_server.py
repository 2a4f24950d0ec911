"""The status page's routes: the page and its files from the package, JSON from the source,
clear errors for a bad service name or an unreachable Redis."""

from __future__ import annotations

from typing import Any, cast

import pytest
from aiohttp.test_utils import TestClient, TestServer

from rollguard.base.errors import ServiceUnavailable
from rollguard.web.server import application


class FakeSource:
    """Answers like :class:`rollguard.web.sources.StatusSource`, or fails like Redis away."""

    def __init__(self, down: bool = False) -> None:
        self.down = down
        self.asked: list[str] = []

    async def overview(self) -> dict[str, Any]:
        if self.down:
            raise ServiceUnavailable("Redis", "127.0.0.1:6379", "connection refused")
        return {"now": 1.0, "services": [{"service": "chat"}], "problems": []}

    async def page(self, service: str) -> dict[str, Any]:
        self.asked.append(service)
        return {"service": {"service": service}}


async def client_of(source: FakeSource) -> TestClient:
    client = TestClient(TestServer(application(cast(Any, source), refresh_s=1.5)))
    await client.start_server()
    return client


async def test_the_page_ships_its_script_and_styles_and_polls_at_the_refresh() -> None:
    """No file comes from elsewhere; the refresh period is written into the page."""
    client = await client_of(FakeSource())
    try:
        page = await (await client.get("/")).text()
        assert 'data-refresh-ms="1500"' in page
        assert "http" not in page.replace('lang="en"', "")  # nothing loaded from a CDN
        script = await client.get("/static/app.js")
        assert script.status == 200 and "text/javascript" in script.headers["Content-Type"]
        assert (await client.get("/static/style.css")).status == 200
        assert (await client.get("/static/secret.txt")).status == 404
    finally:
        await client.close()


@pytest.mark.parametrize(("path", "status", "says"), [
    ("/api/services", 200, '"services"'),
    ("/api/services/chat", 200, '"chat"'),
    ("/api/services/bad%20name", 400, "service name must be"),
])
async def test_the_json_answers_or_names_the_problem(path: str, status: int,
                                                     says: str) -> None:
    """A service name that could not be one is refused before any lookup."""
    source = FakeSource()
    client = await client_of(source)
    try:
        response = await client.get(path)
        assert response.status == status
        assert says in await response.text()
        assert response.headers["Cache-Control"] == "no-store"
    finally:
        await client.close()
    assert source.asked == (["chat"] if path.endswith("chat") else [])


async def test_redis_away_is_a_503_that_says_so() -> None:
    """The page shows the error and asks again at its next refresh."""
    client = await client_of(FakeSource(down=True))
    try:
        response = await client.get("/api/services")
        assert response.status == 503
        assert "Redis" in (await response.json())["error"]
    finally:
        await client.close()
