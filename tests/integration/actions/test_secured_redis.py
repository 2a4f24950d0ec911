"""Every part on a TLS-only redis-server with a private CA and ACL users (``default`` off)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import redis
from click.testing import CliRunner

from rollguard.actions.acl import reader_rules, writer_rules
from rollguard.actions.actuator import Actuator
from rollguard.actions.approvals import PendingCommands
from rollguard.actions.connect import async_redis_client, check_login
from rollguard.actions.operators import OperatorRegistry
from rollguard.actions.pointer import PointerStore
from rollguard.actions.reader import PointerReader, SyncPointerReader
from rollguard.actions.state import PointerState
from rollguard.base.errors import AccessRefused
from rollguard.cli import main
from rollguard.ops.check import check_redis
from rollguard.streams.redis_wait import until_available
from tests.support.pointer import SECRET, command, message
from tests.support.redis_servers import TlsRedis

pytestmark = [pytest.mark.integration]

ARRIVAL_S = 5.0
PASSWORD = "pw-Zq81-never-printed"
COMPONENTS = {"v1": {"model": "m1"}, "v2": {"model": "m2"}}


def add_user(server: TlsRedis, name: str, rules: list[str]) -> None:
    admin = server.admin()
    admin.execute_command("ACL", "SETUSER", name, "reset", "on", f">{PASSWORD}", *rules)
    admin.close()


@pytest.fixture(name="users")
def fixture_users(tls_redis: TlsRedis, mutual_tls_redis: TlsRedis, service: str
                  ) -> Iterator[tuple[str, str]]:
    """A reader user for the test service and a writer user, on both TLS servers."""
    names = (f"reader-{service}", f"writer-{service}")
    for server in (tls_redis, mutual_tls_redis):
        add_user(server, names[0], reader_rules(service))
        add_user(server, names[1], writer_rules())
    yield names
    for server in (tls_redis, mutual_tls_redis):
        admin = server.admin()
        admin.execute_command("ACL", "DELUSER", *names)
        admin.close()


async def registered(url: str, service: str) -> PointerStore:
    store = PointerStore(async_redis_client(url), SECRET)
    for name, components in COMPONENTS.items():
        await store.register_release(service, name, components)
    (await store.issue(service, "promote", "ann", release="v1")).raise_for_status()
    return store


@pytest.mark.parametrize("mutual", [False, True], ids=["server-cert", "client-cert"])
async def test_writers_and_both_readers_work_over_tls_with_least_privileged_users(
    tls_redis: TlsRedis, mutual_tls_redis: TlsRedis, users: tuple[str, str], service: str,
    mutual: bool,
) -> None:
    """A private CA from the URL (and a client certificate where the server demands one):
    the writer's store and pending hash, the asyncio and the threaded reader (their pub/sub
    connections included) all work as the least-privileged users of docs/pointer-protocol."""
    server = mutual_tls_redis if mutual else tls_redis
    reader_url = server.url(users[0], PASSWORD, client_cert=mutual)
    writer_url = server.url(users[1], PASSWORD, client_cert=mutual)
    store = await registered(writer_url, service)
    seen = asyncio.Event()
    threaded_seen = asyncio.Event()
    loop = asyncio.get_running_loop()

    def at_epoch_2(state: PointerState) -> None:
        if state.epoch == 2:
            seen.set()

    def threaded_at_epoch_2(state: PointerState) -> None:
        if state.epoch == 2:
            loop.call_soon_threadsafe(threaded_seen.set)

    async with PointerReader(reader_url, service, on_change=at_epoch_2) as reader:
        with SyncPointerReader(reader_url, service, on_change=threaded_at_epoch_2) as threaded:
            assert reader.resolve("u")[0] == threaded.resolve("u")[0] == "v1"
            (await store.issue(service, "promote", "ann", release="v2")).raise_for_status()
            await asyncio.wait_for(asyncio.gather(seen.wait(), threaded_seen.wait()), ARRIVAL_S)
            assert reader.resolve("u")[0] == threaded.resolve("u")[0] == "v2"
    assert (await store.read_many([service]))[service].active == "v2"  # type: ignore[union-attr]
    assert [e["outcome"] for e in await store.history(service)] == ["applied", "applied"]
    pending = PendingCommands(store.client)
    await pending.put(service, "c1", b"{}")
    assert await pending.take(service, "c1") == b"{}"
    await pending.put(service, "c2", b"{}")
    assert (await pending.approve(service, "c2", "ana", 1))[0] == "taken"
    registry = OperatorRegistry(store.client)
    assert (await registry.add(f"op-{service}", SECRET)).generation == 1
    assert await registry.remove(f"op-{service}")
    assert "ok" in str(await check_redis(writer_url))
    await store.client.aclose()


def test_the_cli_works_over_tls_as_the_writer_user(
    tls_redis: TlsRedis, users: tuple[str, str], service: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDIS_URL", tls_redis.url(users[1], PASSWORD))
    monkeypatch.setenv("ROLLGUARD_SECRET", "cli-test-secret")
    runner = CliRunner()
    for args in (["release", "register", service, "v1", "--component", "model=m1"],
                 ["promote", service, "v1"], ["status", service]):
        result = runner.invoke(main, args)
        assert result.exit_code == 0, result.output
    assert "v1" in result.output


async def test_the_reader_user_reads_its_service_only_and_cannot_write(
    tls_redis: TlsRedis, users: tuple[str, str], service: str,
) -> None:
    store = await registered(tls_redis.url(users[1], PASSWORD), service)
    reader_url = tls_redis.url(users[0], PASSWORD)
    as_reader = PointerStore(async_redis_client(reader_url), SECRET)
    assert (await as_reader.read(service)).active == "v1"
    with pytest.raises(AccessRefused, match="lacks a permission"):
        await as_reader.issue(service, "promote", "mallory", release="v2")
    with pytest.raises(redis.exceptions.NoPermissionError):
        await as_reader.client.set(as_reader.keys(service).pointer, b"{}")
    with pytest.raises(AccessRefused, match="REDIS_URL"):
        await PointerReader(reader_url, f"{service}-other").start()
    assert (await store.read(service)).epoch == 1
    await as_reader.client.aclose()
    await store.client.aclose()


async def _store_read(url: str) -> None:
    store = PointerStore(async_redis_client(url), SECRET)
    try:
        await store.read("any-service")
    finally:
        await store.client.aclose()


async def _reader_start(url: str) -> None:
    await PointerReader(url, "any-service").start()


async def _threaded_reader_start(url: str) -> None:
    SyncPointerReader(url, "any-service").start()


async def _worker_start(url: str) -> None:
    await check_login(url)


async def _check(url: str) -> None:
    await check_redis(url)


@pytest.mark.parametrize("part", [_store_read, _reader_start, _threaded_reader_start,
                                  _worker_start, _check])
async def test_a_wrong_password_fails_at_once_naming_redis_url_and_never_the_password(
    tls_redis: TlsRedis, users: tuple[str, str], part: object,
) -> None:
    url = tls_redis.url(users[1], PASSWORD + "-wrong")
    started = time.monotonic()
    with pytest.raises(AccessRefused) as failure:
        await part(url)  # type: ignore[operator]
    assert time.monotonic() - started < 5.0
    assert "REDIS_URL" in str(failure.value) and "refused" in str(failure.value)
    assert PASSWORD not in str(failure.value) and users[1] in str(failure.value)


def test_the_cli_reports_a_wrong_password_without_printing_it(
    tls_redis: TlsRedis, users: tuple[str, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDIS_URL", tls_redis.url(users[1], PASSWORD + "-wrong"))
    result = CliRunner().invoke(main, ["status", "any-service"])
    assert result.exit_code == 1
    assert "REDIS_URL" in result.output and PASSWORD not in result.output


async def test_the_worker_does_not_retry_refused_credentials() -> None:
    """until_available waits out an unreachable Redis, but not a refused login."""
    calls = 0

    async def refused() -> None:
        nonlocal calls
        calls += 1
        raise AccessRefused("Redis", "redis://127.0.0.1:6379/0", "refused the user and password",
                            "REDIS_URL")

    with pytest.raises(AccessRefused):
        await until_available("actuator", refused)
    assert calls == 1


async def test_the_actuator_keeps_a_command_its_redis_user_may_not_run(
    tls_redis: TlsRedis, users: tuple[str, str], service: str,
) -> None:
    """A command the actuator cannot apply for lack of a permission is not refused and
    dropped: the error reaches the agent, which stops instead of losing the rollback."""
    store = await registered(tls_redis.url(users[1], PASSWORD), service)
    as_reader = PointerStore(async_redis_client(tls_redis.url(users[0], PASSWORD)), SECRET)
    actuator = Actuator(as_reader, PendingCommands(as_reader.client), SECRET)
    with pytest.raises(AccessRefused):
        await actuator.handle(message(command(service, "rollback")))
    assert [e["outcome"] for e in await store.history(service)] == ["applied"]
    await as_reader.client.aclose()
    await store.client.aclose()
