"""Every part on a real three-node Redis Cluster (``redis+cluster://``), a node restarted;
the CLI and both readers on a TLS cluster (``rediss+cluster://``)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import redis
from click.testing import CliRunner
from redis.cluster import key_slot

from rollguard.actions.acl import reader_rules, writer_rules
from rollguard.actions.approvals import PendingCommands
from rollguard.actions.commands import new_command, sign
from rollguard.actions.connect import AsyncRedisCluster, async_redis_client
from rollguard.actions.keys import ServiceKeys, operators_key
from rollguard.actions.operators import OperatorRegistry
from rollguard.actions.pointer import PointerStore
from rollguard.actions.reader import PointerReader, SyncPointerReader
from rollguard.actions.state import PointerState
from rollguard.base.errors import ServiceUnavailable
from rollguard.cli import main
from rollguard.ops.check import check_redis
from tests.support.pointer import SECRET
from tests.support.redis_servers import LoopbackCluster

pytestmark = [pytest.mark.integration]

ARRIVAL_S = 10.0
COMPONENTS = {"v1": {"model": "m1", "prompt": "p1"}, "v2": {"model": "m2", "prompt": "p2"}}


@pytest.fixture(name="store")
async def fixture_store(redis_cluster: LoopbackCluster) -> AsyncIterator[PointerStore]:
    client = async_redis_client(redis_cluster.url)
    assert isinstance(client, AsyncRedisCluster)
    yield PointerStore(client, SECRET)
    await client.aclose()


async def promoted(store: PointerStore, service: str) -> None:
    for name, components in COMPONENTS.items():
        await store.register_release(service, name, components)
    (await store.issue(service, "promote", "ann", release="v1")).raise_for_status()


class Epochs:
    """An on_change callback (any thread) recording epochs; a test awaits one of them."""

    def __init__(self) -> None:
        self.seen: list[int] = []
        self.loop = asyncio.get_running_loop()
        self.changed = asyncio.Event()

    def __call__(self, state: PointerState) -> None:
        self.seen.append(state.epoch)
        self.loop.call_soon_threadsafe(self.changed.set)

    async def reach(self, epoch: int) -> None:
        async def wait() -> None:
            while not self.seen or self.seen[-1] < epoch:
                await self.changed.wait()
                self.changed.clear()
        await asyncio.wait_for(wait(), ARRIVAL_S)


def test_every_key_a_script_touches_shares_its_services_slot() -> None:
    """The KEYS of apply.lua, register.lua and the approvals' scripts: one slot per service."""
    keys = ServiceKeys.of("support-bot")
    touched = [keys.pointer, keys.history, keys.idempotency("k"), keys.releases,
               keys.release_order, keys.spent("c"), keys.pending, keys.idempotency(""),
               keys.approvers]
    assert len({key_slot(k.encode()) for k in touched}) == 1


async def test_the_store_readers_pending_hash_cli_and_check_work_on_a_cluster(
    store: PointerStore, redis_cluster: LoopbackCluster,
) -> None:
    """Services spread over the nodes: scripts (promote, partial rollback, refusal,
    registration, approvals' take), MGET across slots, both readers and rollguard check."""
    services = [f"cl-{uuid.uuid4().hex[:10]}" for _ in range(12)]
    while len({redis_cluster.node_of(ServiceKeys.of(s).pointer) for s in services}) < 3:
        services.insert(0, f"cl-{uuid.uuid4().hex[:10]}")  # until every node holds one
    for service in services[:-1]:
        await promoted(store, service)
    found = await store.read_many(services)
    assert [p.active if p else None for p in found.values()] == ["v1"] * (
        len(services) - 1) + [None]

    service = services[0]
    epochs, threaded = Epochs(), Epochs()
    async with PointerReader(redis_cluster.url, service, on_change=epochs) as reader:
        with SyncPointerReader(redis_cluster.url, service, on_change=threaded):
            (await store.issue(service, "promote", "ann", release="v2")).raise_for_status()
            rolled = await store.issue(service, "rollback", "ann", components=["model"])
            rolled.raise_for_status()
            await epochs.reach(3)
            await threaded.reach(3)
            assert reader.resolve("u")[1]["model"] == "m1"
    refused = await store.issue(service, "promote", "ann", release="nope")
    assert refused.code == "unknown_release"
    assert [e["outcome"] for e in await store.history(service)] == [
        "applied", "applied", "applied", "refused"]
    pending = PendingCommands(store.client)
    await pending.put(service, "c1", b"{}")
    assert await pending.take(service, "c1") == b"{}"
    assert await pending.take(service, "c1") is None
    await pending.put(service, "c2", b"{}")
    assert (await pending.approve(service, "c2", "ana", 2))[0] == "waiting"
    assert await pending.approve(service, "c2", "bob", 2) == ("taken", ("ana", "bob"), b"{}")
    registry = OperatorRegistry(store.client)
    operator = f"op-{service}"
    assert (await registry.add(operator, SECRET)).generation == 1
    assert await registry.remove(operator) and await registry.generation(operator) is None
    await store.client.hdel(operators_key(), operator)
    assert "ok" in str(await check_redis(redis_cluster.url))


def test_the_cli_works_on_a_cluster(redis_cluster: LoopbackCluster,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", redis_cluster.url)
    monkeypatch.setenv("ROLLGUARD_SECRET", "cli-test-secret")
    service = f"cl-{uuid.uuid4().hex[:10]}"
    runner = CliRunner()
    for args in (["release", "register", service, "v1", "--component", "model=m1"],
                 ["promote", service, "v1"], ["status", service]):
        result = runner.invoke(main, args)
        assert result.exit_code == 0, result.output
    assert "v1" in result.output


async def test_a_cli_flip_on_a_tls_cluster_reaches_both_readers(
    tls_redis_cluster: LoopbackCluster, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`rollguard release register`, `promote` and `rollback` over rediss+cluster://; both
    readers, subscribed over TLS, follow each flip; the Redis check passes."""
    url = tls_redis_cluster.url
    assert url.startswith("rediss+cluster://")
    monkeypatch.setenv("REDIS_URL", url)
    monkeypatch.setenv("ROLLGUARD_SECRET", "cli-test-secret")
    service = f"tls-{uuid.uuid4().hex[:10]}"
    runner = CliRunner()

    async def cli(*args: str) -> str:
        # the CLI runs its own event loop: in a thread, beside this test's
        result = await asyncio.to_thread(runner.invoke, main, list(args))
        assert result.exit_code == 0, result.output
        return result.output

    for release in ("v1", "v2"):
        await cli("release", "register", service, release, "--component", f"model=m-{release}")
    await cli("promote", service, "v1")
    epochs, threaded = Epochs(), Epochs()
    async with PointerReader(url, service, on_change=epochs) as reader:
        with SyncPointerReader(url, service, on_change=threaded):
            await cli("promote", service, "v2")
            await epochs.reach(2)
            await threaded.reach(2)
            assert reader.resolve("u") == ("v2", {"model": "m-v2"})
            await cli("rollback", service)
            await epochs.reach(3)
            await threaded.reach(3)
            assert reader.resolve("u")[0] == "v1"
    assert epochs.seen == threaded.seen == [1, 2, 3]
    assert "ok" in str(await check_redis(url))


async def test_the_least_privileged_users_work_on_a_cluster(
    redis_cluster: LoopbackCluster,
) -> None:
    """The reader's and the writer's ACL rules with cluster discovery, set on every node."""
    service = f"cl-{uuid.uuid4().hex[:10]}"
    names = (f"reader-{service}", f"writer-{service}")
    for port in redis_cluster.ports:
        node = redis.Redis(port=port)
        node.execute_command("ACL", "SETUSER", names[0], "reset", "on", ">pw",
                             *reader_rules(service, cluster=True))
        node.execute_command("ACL", "SETUSER", names[1], "reset", "on", ">pw",
                             *writer_rules(cluster=True))
        node.close()
    seeds = redis_cluster.url.split("://")[1]
    reader_url, writer_url = (f"redis+cluster://{name}:pw@{seeds}" for name in names)
    store = PointerStore(async_redis_client(writer_url), SECRET)
    await promoted(store, service)
    assert "ok" in str(await check_redis(writer_url))
    epochs, threaded = Epochs(), Epochs()
    async with PointerReader(reader_url, service, on_change=epochs) as reader:
        with SyncPointerReader(reader_url, service, on_change=threaded):
            (await store.issue(service, "promote", "ann", release="v2")).raise_for_status()
            await epochs.reach(2)
            await threaded.reach(2)
            assert reader.resolve("u")[0] == "v2"
    await store.client.aclose()


async def flip(store: PointerStore, service: str, i: int) -> None:
    """Flip number ``i`` (v2, v1, v2, ...), retried with its idempotency key until Redis
    answers (a retry of a flip whose reply was lost is a duplicate, never a second flip)."""
    while True:
        command = sign(new_command(service, "promote", "ann", time.time(),
                                   release="v2" if i % 2 == 0 else "v1",
                                   idempotency_key=f"flip-{i}"), SECRET)
        try:
            outcome = await store.execute(command, time.time())
        except ServiceUnavailable:
            await asyncio.sleep(0.05)  # the node is restarting: try again shortly
            continue
        assert outcome.ok, outcome
        return


async def test_flips_during_a_node_restart_apply_once_each_and_readers_resync(
    store: PointerStore, redis_cluster: LoopbackCluster,
) -> None:
    """The node holding the service's slot stops after five flips and starts again while
    flips go on: every flip applies exactly once, and both readers end on the last epoch
    without going back or repeating one."""
    service = f"cl-{uuid.uuid4().hex[:10]}"
    await promoted(store, service)
    flips, down_during_a_flip = 30, False
    epochs, threaded = Epochs(), Epochs()
    node = redis_cluster.node_of(ServiceKeys.of(service).pointer)
    async with PointerReader(redis_cluster.url, service, on_change=epochs,
                             refresh_interval_s=0.5):
        with SyncPointerReader(redis_cluster.url, service, on_change=threaded,
                               refresh_interval_s=0.5):
            restarted: asyncio.Future[None] | None = None
            for i in range(flips):
                if i == 5:
                    await asyncio.to_thread(redis_cluster.stop_node, node)
                    restarted = asyncio.ensure_future(
                        asyncio.to_thread(redis_cluster.start_node, node))
                    down_during_a_flip = not restarted.done()
                await flip(store, service, i)
            assert restarted is not None
            await restarted
            await epochs.reach(flips + 1)
            await threaded.reach(flips + 1)
    assert down_during_a_flip
    history = await store.history(service, count=1000)
    assert sum(e["outcome"] == "applied" for e in history) == flips + 1  # + the first promote
    assert (await store.read(service)).epoch == flips + 1
    for seen in (epochs.seen, threaded.seen):
        assert seen == sorted(set(seen)), seen  # never back, never twice
        assert seen[-1] == flips + 1
