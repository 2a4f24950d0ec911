"""The status page and the reports read as the read-only observer user (which cannot write),
and on a Redis Cluster."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from rollguard.actions.acl import observer_rules, writer_rules
from rollguard.actions.connect import async_redis_client
from rollguard.actions.pointer import PointerStore
from rollguard.base.errors import RollguardError
from rollguard.report.sources import read_redis
from rollguard.web.sources import AuditLog, MetricsScraper, StatusSource
from tests.support.pointer import SECRET
from tests.support.redis_servers import LoopbackCluster, TlsRedis

pytestmark = [pytest.mark.integration]
PASSWORD = "pw-observer-never-printed"


@pytest.fixture(name="users")
def fixture_users(tls_redis: TlsRedis, service: str) -> Iterator[tuple[str, str]]:
    names = (f"observer-{service}", f"writer-{service}")
    admin = tls_redis.admin()
    for name, rules in zip(names, (observer_rules(), writer_rules()), strict=True):
        admin.execute_command("ACL", "SETUSER", name, "reset", "on", f">{PASSWORD}", *rules)
    yield names
    admin.execute_command("ACL", "DELUSER", *names)
    admin.close()


async def test_the_page_and_the_report_read_as_the_observer_user(
        tls_redis: TlsRedis, users: tuple[str, str], service: str) -> None:
    """Every service listed, one service in full, a report's reads; a write is refused."""
    writer = PointerStore(async_redis_client(tls_redis.url(users[1], PASSWORD)), SECRET)
    await writer.register_release(service, "v1", {"model": "m1"})
    (await writer.issue(service, "promote", "ann", release="v1")).raise_for_status()
    observer_url = tls_redis.url(users[0], PASSWORD)
    client = async_redis_client(observer_url)
    source = StatusSource(client, AuditLog("unused", "unused"), MetricsScraper("", 2.0))
    try:
        overview = await source.overview()
        assert service in [row["service"] for row in overview["services"]]
        page = await source.page(service)
        assert page["service"]["active"] == "v1" and page["history"][0]["by"] == "ann"
        pointer, history = await read_redis(service, observer_url)
        assert pointer is not None and [h["op"] for h in history] == ["promote"]
        with pytest.raises((RollguardError, redis.RedisError)):
            await PointerStore(client, SECRET).issue(service, "pin", "ann")
    finally:
        await client.aclose()
        await writer.client.aclose()


async def test_the_page_reads_every_service_of_a_cluster(redis_cluster: LoopbackCluster,
                                                        service: str) -> None:
    """Services on every node are listed (SCAN of each primary), with their approvals."""
    client = async_redis_client(redis_cluster.url)
    store = PointerStore(client, SECRET)
    names = [f"{service}-{i}" for i in range(6)]  # spread over the three nodes' slots
    try:
        for name in names:
            await store.register_release(name, "v1", {"model": "m1"})
            (await store.issue(name, "promote", "ann", release="v1")).raise_for_status()
        source = StatusSource(client, AuditLog("unused", "unused"), MetricsScraper("", 2.0))
        rows = {row["service"]: row for row in (await source.overview())["services"]}
        assert set(names) <= set(rows)
        assert {rows[name]["judgement"] for name in names} == {"ok"}
    finally:
        for name in names:
            await client.delete(*[k async for k in client.scan_iter(
                match=f"rollguard:{{{name}}}:*")])
        await client.aclose()
