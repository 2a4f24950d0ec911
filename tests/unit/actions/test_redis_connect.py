"""REDIS_URL to clients, without a server: cluster URLs, TLS options, redaction."""

from __future__ import annotations

import ssl

import pytest
from redis.cluster import LoadBalancingStrategy

from rollguard.actions.connect import (
    AsyncRedisCluster,
    async_redis_client,
    describe,
    reads_replicas,
    redact,
    tls_context,
)
from rollguard.actions.reader import PointerReader
from rollguard.base.errors import AccessRefused, ConfigError


@pytest.mark.parametrize(("url", "expected"), [
    ("redis://u:p@h:1/0", "redis://u:***@h:1/0"),
    ("rediss://:p%40ss@h:1", "rediss://:***@h:1"),
    ("rediss+cluster://u:pw@a:1,b:2?ssl_ca_certs=/ca", "rediss+cluster://u:***@a:1,b:2?ssl_ca_certs=/ca"),
    ("redis://h:1/0", "redis://h:1/0"),
    ("unix:///run/redis.sock", "unix:///run/redis.sock"),
])
def test_redact_hides_only_the_password(url: str, expected: str) -> None:
    assert redact(url) == expected


async def test_a_cluster_url_gives_a_cluster_client_with_its_seeds_user_and_tls_files() -> None:
    client = async_redis_client(
        "rediss+cluster://app:s3cret@10.0.0.1:7001,10.0.0.2:7002"
        "?ssl_ca_certs=/etc/ca.pem&ssl_certfile=/etc/c.pem&ssl_keyfile=/etc/c.key")
    assert isinstance(client, AsyncRedisCluster)
    seeds = sorted(client.nodes_manager.startup_nodes)
    assert seeds == ["10.0.0.1:7001", "10.0.0.2:7002"]
    kwargs = client.nodes_manager.connection_kwargs
    assert (kwargs["username"], kwargs["password"]) == ("app", "s3cret")
    assert (kwargs["ssl_ca_certs"], kwargs["ssl_certfile"], kwargs["ssl_keyfile"]) == (
        "/etc/ca.pem", "/etc/c.pem", "/etc/c.key")
    assert describe(client) == "rediss+cluster://app:***@10.0.0.1:7001,10.0.0.2:7002"
    await client.aclose()


@pytest.mark.parametrize("url", [
    "redis+cluster://u:s3cret@a:1/2",  # a cluster has database 0 only
    "redis+cluster://u:s3cret@a:1,b",  # a seed without a port
])
def test_a_bad_cluster_url_is_a_config_error_that_hides_the_password(url: str) -> None:
    with pytest.raises(ConfigError, match="REDIS_URL") as failure:
        async_redis_client(url)
    assert "s3cret" not in str(failure.value)


def test_a_refused_login_is_a_config_error_not_an_outage() -> None:
    """The worker waits out ServiceUnavailable; AccessRefused must not be one."""
    assert issubclass(AccessRefused, ConfigError)


@pytest.mark.parametrize(("client", "replicas"), [
    (lambda: AsyncRedisCluster(host="127.0.0.1", port=1,
                               load_balancing_strategy=LoadBalancingStrategy.ROUND_ROBIN), True),
    (lambda: async_redis_client("rediss+cluster://127.0.0.1:1,127.0.0.1:2"), False),
    (lambda: async_redis_client("redis://127.0.0.1:1/0"), False),
], ids=["cluster-reading-replicas", "cluster-from-url", "one-server"])
async def test_a_reader_on_a_client_that_may_read_replicas_never_takes_an_older_epoch(
    client: object, replicas: bool,
) -> None:
    """The reader turns on the epoch rule for lagging replicas (reads apply only if newer,
    tests/unit/actions/test_reader_core.py) exactly when its client may read a replica."""
    made = client()  # type: ignore[operator]
    assert reads_replicas(made) is replicas
    assert PointerReader(made, "bot").replica_reads is replicas
    await made.aclose()


@pytest.mark.parametrize(("reqs", "mode", "hostname"), [
    ("required", ssl.CERT_REQUIRED, True),
    ("optional", ssl.CERT_OPTIONAL, True),
    ("none", ssl.CERT_NONE, False),
])
def test_the_subscribers_tls_context_follows_the_urls_verification(
    reqs: str, mode: ssl.VerifyMode, hostname: bool,
) -> None:
    context = tls_context({"ssl_cert_reqs": reqs})
    assert (context.verify_mode, context.check_hostname) == (mode, hostname)
