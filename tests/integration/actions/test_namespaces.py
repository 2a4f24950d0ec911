"""Two deployments on one Redis — another namespace, or another database — never see each
other's pointers: not by GET, and not by pub/sub, which ignores database numbers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from rollguard.actions.connect import async_redis_client
from rollguard.actions.pointer import PointerStore
from rollguard.actions.reader import PointerReader
from rollguard.actions.state import PointerState
from rollguard.base.config import redis_url

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("servers")]
SECRET = b"namespace-secret"
SERVICE = "shared-name"


def url_of_db(db: int) -> str:
    return redis_url().rsplit("/", 1)[0] + f"/{db}"


@pytest.fixture(name="namespaces")
async def fixture_namespaces() -> AsyncIterator[tuple[str, str]]:
    """Two fresh namespaces; every key of both, in databases 0 and 5, deleted afterwards."""
    names = (f"ns-a-{uuid.uuid4().hex[:8]}", f"ns-b-{uuid.uuid4().hex[:8]}")
    yield names
    for db in (0, 5):
        client = async_redis_client(url_of_db(db))
        for name in names:
            keys = [k async for k in client.scan_iter(match=f"{name}:*")]
            if keys:
                await client.delete(*keys)
        await client.aclose()


async def deploy(url: str, namespace: str, release: str) -> PointerStore:
    store = PointerStore(async_redis_client(url), SECRET, namespace)
    await store.register_release(SERVICE, release, {"model": release})
    (await store.issue(SERVICE, "promote", "ann", release=release)).raise_for_status()
    return store


@pytest.mark.parametrize(("other_db", "other_namespace"), [(5, False), (0, True), (5, True)],
                         ids=["other-db", "other-namespace", "both"])
async def test_changes_of_another_deployment_never_reach_a_reader(
        namespaces: tuple[str, str], other_db: int, other_namespace: bool) -> None:
    mine_ns, theirs_ns = namespaces[0], namespaces[1] if other_namespace else namespaces[0]
    mine = await deploy(url_of_db(0), mine_ns, "mine-1")
    theirs = await deploy(url_of_db(other_db), theirs_ns, "theirs-1")
    seen: list[PointerState] = []
    arrived = asyncio.Event()

    def on_change(state: PointerState) -> None:
        seen.append(state)
        if state.active == "mine-2":
            arrived.set()

    async with PointerReader(url_of_db(0), SERVICE, on_change, prefix=mine_ns):
        for release in ("theirs-2", "theirs-3"):
            await theirs.register_release(SERVICE, release, {"model": release})
            (await theirs.issue(SERVICE, "promote", "bob", release=release)).raise_for_status()
        await mine.register_release(SERVICE, "mine-2", {"model": "mine-2"})
        (await mine.issue(SERVICE, "promote", "ann", release="mine-2")).raise_for_status()
        await asyncio.wait_for(arrived.wait(), 10)  # the positive signal: our own change
    assert [s.active for s in seen] == ["mine-1", "mine-2"]
    assert (await theirs.read(SERVICE)).active == "theirs-3"
    await mine.client.aclose()
    await theirs.client.aclose()
