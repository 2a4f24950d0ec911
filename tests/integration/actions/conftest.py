"""Fixtures for the pointer tests: a fresh service name per test on the shared Redis server."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from rollguard.actions.commands import Op
from rollguard.actions.connect import async_redis_client
from rollguard.actions.keys import ServiceKeys, operators_key
from rollguard.actions.operators import OperatorKey, OperatorRegistry
from rollguard.actions.pointer import Outcome, PointerStore
from tests.support.pointer import SECRET, Issue, MakeOperator, command
from tests.support.private_redis import PrivateRedis
from tests.support.redis_servers import LoopbackCluster, TlsRedis


@pytest.fixture(name="service")
def fixture_service() -> str:
    """A service name no other test (or engineer) uses, so parallel runs never collide."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(name="store")
async def fixture_store(servers: None, service: str) -> AsyncIterator[PointerStore]:
    """A store on the shared Redis; the test service's keys are deleted afterwards."""
    client = async_redis_client()
    store = PointerStore(client, SECRET)
    yield store
    keys = [k async for k in client.scan_iter(match=ServiceKeys.of(service).pattern)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture(name="operator")
async def fixture_operator(store: PointerStore) -> AsyncIterator[MakeOperator]:
    """Register operators under names no one else uses (``ana`` -> ``ana-1f3c...``) with
    keys derived from SECRET; they are deleted from the shared registry afterwards."""
    registry = OperatorRegistry(store.client)
    made: list[str] = []

    async def make(name: str) -> OperatorKey:
        made.append(f"{name}-{uuid.uuid4().hex[:8]}")
        return await registry.add(made[-1], SECRET)

    yield make
    if made:
        await store.client.hdel(operators_key(), *made)


@pytest.fixture(name="issue")
def fixture_issue(store: PointerStore, service: str) -> Issue:
    """Sign and execute a command on the test service."""

    async def issue(op: Op, by: str = "ann", **fields: object) -> Outcome:
        return await store.execute(command(service, op, by, **fields), time.time())

    return issue


@pytest.fixture(name="released")
async def fixture_released(store: PointerStore, service: str, issue: Issue) -> PointerStore:
    """v1 (stable, active) and v2 registered; v1 promoted."""
    await store.register_release(
        service, "v1", {"model": "m1", "prompt": "p1", "index": "i1", "policy": "s1"}
    )
    await store.register_release(
        service, "v2", {"model": "m2", "prompt": "p2", "index": "i2", "policy": "s1"}
    )
    (await issue("promote", release="v1")).raise_for_status()
    return store


@pytest.fixture(name="private_redis")
def fixture_private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """Our own redis-server (not the shared one), free to stop and restart."""
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture(name="tls_redis", scope="session")
def fixture_tls_redis() -> Iterator[TlsRedis]:
    """A TLS-only redis-server (private CA, client certificates checked when given) whose
    ``default`` user is off: one per test session."""
    server = TlsRedis(auth_clients="optional")
    server.start()
    yield server
    server.stop()


@pytest.fixture(name="mutual_tls_redis", scope="session")
def fixture_mutual_tls_redis() -> Iterator[TlsRedis]:
    """A TLS-only redis-server that refuses clients without a certificate of its CA."""
    server = TlsRedis(auth_clients="yes")
    server.start()
    yield server
    server.stop()


@pytest.fixture(name="redis_cluster", scope="session")
def fixture_redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackCluster]:
    """Three Redis Cluster primaries on loopback: one cluster per test session."""
    cluster = LoopbackCluster(tmp_path_factory.mktemp("redis-cluster"))
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(name="tls_redis_cluster", scope="session")
def fixture_tls_redis_cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LoopbackCluster]:
    """Three Redis Cluster primaries speaking TLS only (``rediss+cluster://``), the cluster
    bus included, with the certificates of ``tls_redis``: one per test session."""
    cluster = LoopbackCluster(tmp_path_factory.mktemp("redis-tls-cluster"), tls=True)
    cluster.start()
    yield cluster
    cluster.stop()
