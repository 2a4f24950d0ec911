"""The Redis of docker-compose.secure.yml, run here: its command line with the files
`python -m rollguard.ops.compose_secrets` makes; the writer's URL passes `rollguard check`, and
the reader may read its service's pointer but not write."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
import yaml

from rollguard.actions.connect import async_redis_client
from rollguard.actions.pointer import PointerStore
from rollguard.base.errors import AccessRefused
from rollguard.ops import compose_secrets
from rollguard.ops.check import check_redis
from tests.support.pointer import SECRET
from tests.support.ports import free_port
from tests.support.redis_servers import REDIS_SERVER, wait_ready

pytestmark = [pytest.mark.integration]

COMPOSE = yaml.safe_load((Path(__file__).parents[3] / "docker-compose.secure.yml").read_text())


def local(url: str, made: Path, port: int) -> str:
    """A compose URL as seen from here: the server on loopback, the CA in ``made``."""
    return (url.replace("@redis:6380/", f"@127.0.0.1:{port}/")
            .replace("/run/secrets/ca.crt", str(made / "ca.crt")))


@pytest.fixture(name="compose_redis", scope="module")
def fixture_compose_redis(tmp_path_factory: pytest.TempPathFactory,
                          ) -> Iterator[tuple[Path, int]]:
    made = tmp_path_factory.mktemp("compose") / "secrets"
    compose_secrets.make_secrets(made)
    data, port = made.parent / "data", free_port()
    data.mkdir()
    args = [arg.replace("/etc/redis/secrets", str(made / "redis")).replace("/data", str(data))
            for arg in COMPOSE["services"]["redis"]["command"][1:]]
    args[args.index("--tls-port") + 1] = str(port)
    process = subprocess.Popen([REDIS_SERVER, *args, "--bind", "127.0.0.1"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield made, port
    process.terminate()
    process.wait(timeout=10)


async def test_the_writer_works_and_the_reader_only_reads(
        compose_redis: tuple[Path, int]) -> None:
    made, port = compose_redis
    writer = local((made / "redis-url-writer").read_text().strip(), made, port)
    reader = local((made / "redis-url-reader").read_text().strip(), made, port)
    wait_ready(redis.Redis.from_url(writer))
    assert "ok" in str(await check_redis(writer))
    service = compose_secrets.READER_SERVICE
    store = PointerStore(async_redis_client(writer), SECRET)
    await store.register_release(service, "v1", {"model": "m1"})
    (await store.issue(service, "promote", "ann", release="v1")).raise_for_status()
    as_reader = PointerStore(async_redis_client(reader), SECRET)
    assert (await as_reader.read(service)).active == "v1"
    with pytest.raises(AccessRefused, match="lacks a permission"):
        await as_reader.issue(service, "rollback", "mallory")
    with pytest.raises(AccessRefused, match="refused the user and password"):
        await check_redis(writer.replace(urlsplit(writer).password or "", "wrong-password"))
    await store.client.aclose()
    await as_reader.client.aclose()
