"""Redis clients built from one URL, for every part: one server or a cluster, TLS, ACL users.

``REDIS_URL`` is ``redis://`` or ``rediss://`` (TLS) for one server, ``redis+cluster://`` or
``rediss+cluster://`` with ``host:port[,host:port...]`` seed nodes for a Redis Cluster. User
and password go before ``@``; TLS files in the query: ``ssl_ca_certs`` (a private CA),
``ssl_certfile`` and ``ssl_keyfile`` (a client certificate), ``ssl_cert_reqs``,
``ssl_check_hostname``. Every client, subscriber connections included, is made here, and every
error about a URL names it redacted (:func:`redact`): a password never reaches a message.
"""

from __future__ import annotations

import ssl
from typing import Any, TypeAlias, cast

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import ClusterNode, RedisCluster
from redis.connection import parse_url
from redis.exceptions import ClusterError, SlotNotCoveredError, TryAgainError

from rollguard.base.config import redis_url
from rollguard.base.errors import AccessRefused, ConfigError, ServiceUnavailable
from rollguard.base.redact import MASK, redact

__all__ = [
    "PERMISSION_ERRORS", "TRANSIENT_ERRORS", "AsyncClient", "AsyncRedisCluster", "SyncClient",
    "async_redis_client", "check_login", "describe", "is_cluster", "ping", "reads_replicas",
    "redact", "redis_client", "refused_credentials", "subscriber_targets", "tls_context",
    "unavailable",
]

# Fail fast when nothing listens: a dead server must produce an error, not a hang.
SOCKET_TIMEOUT_S = 5.0
SETTING = "REDIS_URL"
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}

AsyncClient: TypeAlias = aioredis.Redis | AsyncRedisCluster
SyncClient: TypeAlias = redis.Redis | RedisCluster

# What a caller may wait out: the server is away or restarting, or its cluster re-forming.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    redis.ConnectionError, redis.TimeoutError, OSError, ClusterError, TryAgainError,
    SlotNotCoveredError,
)
# What the credentials cause: translated to AccessRefused (refused_credentials).
PERMISSION_ERRORS: tuple[type[Exception], ...] = (redis.exceptions.NoPermissionError,)



def _cluster_parts(url: str) -> tuple[list[tuple[str, int]], dict[str, Any]] | None:
    """Seed nodes and client options of a cluster URL; None for a one-server URL."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in CLUSTER_SCHEMES:
        return None
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    netloc, tail = rest[:cut], rest[cut:]
    userinfo, at, hosts = netloc.rpartition("@")
    nodes = []
    for node in hosts.split(","):
        host, _, port = node.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"{SETTING}: expected host:port seed nodes, got {redact(url)!r}")
        nodes.append((host.strip("[]"), int(port)))
    # redis-py reads credentials and TLS options from a one-server URL: borrow its parser.
    first = f"{CLUSTER_SCHEMES[scheme]}://{userinfo}{at}{hosts.split(',')[0]}{tail}"
    options = parse_url(first)
    if options.pop("db", 0):
        raise ConfigError(f"{SETTING}: a Redis Cluster has only database 0: {redact(url)!r}")
    for name in ("host", "port", "path"):
        options.pop(name, None)
    if options.pop("connection_class", None) is not None:
        options["ssl"] = True
    return nodes, options


def _options(**extra: Any) -> dict[str, Any]:
    return {"socket_connect_timeout": SOCKET_TIMEOUT_S, "socket_timeout": SOCKET_TIMEOUT_S,
            **extra}


def redis_client(url: str | None = None) -> SyncClient:
    """A synchronous client for ``url`` (default ``REDIS_URL``)."""
    return cast(SyncClient, _client(url, redis.Redis, RedisCluster, ClusterNode))


def async_redis_client(url: str | None = None) -> AsyncClient:
    """An asyncio client for ``url`` (default ``REDIS_URL``)."""
    return cast(AsyncClient, _client(url, aioredis.Redis, AsyncRedisCluster, AsyncClusterNode))


def _client(url: str | None, single: Any, cluster_class: Any, node_class: Any) -> Any:
    # One server or a cluster, of the sync or asyncio flavour given by the classes.
    url = url or redis_url()
    try:
        cluster = _cluster_parts(url)
        if cluster is not None:
            nodes, options = cluster
            return cluster_class(startup_nodes=[node_class(h, p) for h, p in nodes],
                                 **_options(**options))
        return single.from_url(url, **_options())
    except ValueError as exc:
        raise ConfigError(f"{SETTING}: {exc}: {redact(url)!r}") from exc


def is_cluster(client: object) -> bool:
    return isinstance(client, AsyncRedisCluster | RedisCluster)


def reads_replicas(client: object) -> bool:
    """True when ``client`` may send reads to replicas (a cluster client configured so)."""
    return is_cluster(client) and bool(getattr(client, "read_from_replicas", False)
                                       or getattr(client, "load_balancing_strategy", None))


def describe(client: AsyncClient | SyncClient) -> str:
    """Where ``client`` connects, its password masked as :func:`rollguard.base.redact.redact`
    masks one in a URL: ``redis://[user[:***]@]host:port``
    (``rediss``, ``redis+cluster`` as the client is)."""
    if isinstance(client, AsyncRedisCluster | RedisCluster):
        nodes = client.get_nodes() or getattr(client.nodes_manager, "startup_nodes", {}).values()
        kwargs = client.nodes_manager.connection_kwargs
        tls = _is_tls(kwargs) or bool(kwargs.get("ssl"))
        hosts = ",".join(sorted(f"{n.host}:{n.port}" for n in nodes))
        return f"{'rediss' if tls else 'redis'}+cluster://{_login(kwargs)}{hosts}"
    kwargs = client.connection_pool.connection_kwargs
    if kwargs.get("path"):
        return f"unix://{kwargs['path']}"
    scheme = "rediss" if _is_tls(kwargs) or _is_tls(
        {"connection_class": client.connection_pool.connection_class}) else "redis"
    host, port = kwargs.get("host", "localhost"), kwargs.get("port", 6379)
    return f"{scheme}://{_login(kwargs)}{host}:{port}"


def _login(kwargs: dict[str, Any]) -> str:
    # As rollguard.base.redact shows a URL: the user, and *** for a password.
    user = kwargs.get("username") or ""
    return f"{user}:{MASK}@" if kwargs.get("password") else f"{user}@" if user else ""


def _is_tls(kwargs: dict[str, Any]) -> bool:
    cls = kwargs.get("connection_class")
    return isinstance(cls, type) and "SSL" in cls.__name__


def tls_context(kwargs: dict[str, Any]) -> ssl.SSLContext:
    """An SSL context honouring redis-py's ``ssl_*`` connection options (CA, client
    certificate, verification), for connections redis-py does not make itself."""
    context = ssl.create_default_context(cafile=kwargs.get("ssl_ca_certs"),
                                         cadata=kwargs.get("ssl_ca_data"))
    if kwargs.get("ssl_certfile"):
        context.load_cert_chain(kwargs["ssl_certfile"], kwargs.get("ssl_keyfile"),
                                kwargs.get("ssl_password"))
    reqs = kwargs.get("ssl_cert_reqs", "required")
    mode = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL,
            "required": ssl.CERT_REQUIRED}.get(str(reqs).lower(), reqs)
    context.check_hostname = bool(kwargs.get("ssl_check_hostname", True)) and (
        mode != ssl.CERT_NONE)
    context.verify_mode = mode
    return context


def subscriber_targets(client: AsyncClient, key: str) -> list[dict[str, Any]]:
    """Connection options (host, port or path, username, password, ``ssl`` context or None)
    of the servers a subscriber for ``key``'s service may use, the preferred first.

    A cluster delivers a ``PUBLISH`` to the subscribers of every node, so any node serves;
    the node of ``key``'s slot comes first. Call after the client is initialised.
    """
    if isinstance(client, AsyncRedisCluster):
        first = client.get_node_from_key(key)
        nodes = [n for n in client.get_nodes() if n is first] + [
            n for n in client.get_nodes() if n is not first]
        # a node keeps its connection class (TLS or not) apart from its keyword arguments
        return [_target({**n.connection_kwargs, "connection_class": n.connection_class,
                         "host": n.host, "port": n.port}) for n in nodes]
    pool = client.connection_pool
    return [_target({"connection_class": pool.connection_class, **pool.connection_kwargs})]


def _target(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {"host": kwargs.get("host", "localhost"), "port": kwargs.get("port", 6379),
            "path": kwargs.get("path"), "username": kwargs.get("username"),
            "password": kwargs.get("password"),
            "ssl": tls_context(kwargs) if _is_tls(kwargs) else None}


def unavailable(exc: BaseException, address: str | None = None,
                ) -> ServiceUnavailable | AccessRefused:
    """Translate a redis-py connection error into ours, naming the address (redacted):
    :class:`AccessRefused` when the server refused the credentials (no retry can fix
    that), else ServiceUnavailable."""
    refused = refused_credentials(exc, address)
    if refused is not None:
        return refused
    return ServiceUnavailable("Redis", redact(address or redis_url()),
                              str(exc) or type(exc).__name__)


def refused_credentials(exc: BaseException, address: str | None = None,
                        ) -> AccessRefused | None:
    """Our error for a refused login or a missing ACL permission, else None."""
    where = redact(address or redis_url())
    text = str(exc)
    if isinstance(exc, redis.AuthenticationError) or text.startswith(("WRONGPASS", "NOAUTH")):
        return AccessRefused("Redis", where, f"refused the user and password: {text}", SETTING)
    if isinstance(exc, redis.exceptions.NoPermissionError) or text.startswith("NOPERM"):
        return AccessRefused("Redis", where, "refused a command: the user lacks a permission "
                             f"(docs/pointer-protocol.md, section 9): {text}", SETTING)
    return None


async def ping(client: AsyncClient, address: str | None = None) -> None:
    """Raise ServiceUnavailable unless the server answers PING (AccessRefused if it
    refuses the credentials)."""
    try:
        await client.ping()
    except (*TRANSIENT_ERRORS, *PERMISSION_ERRORS) as exc:
        raise unavailable(exc, address) from exc


async def check_login(url: str | None = None) -> None:
    """At start-up: raise AccessRefused if the server refuses ``url``'s credentials.
    A server that does not answer is left to the caller's retries (it may come back)."""
    client = async_redis_client(url)
    try:
        await ping(client, url)
    except ServiceUnavailable:
        pass
    finally:
        await client.aclose()


def database_of(client: AsyncClient | SyncClient) -> int:
    """The database number a client uses (a cluster has only database 0); readers subscribe
    to their database's changes channel only (actions/keys.py)."""
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None) or {}
    return int(kwargs.get("db") or 0)


def attach(client_or_url: Any, build: Any) -> tuple[Any, bool]:
    """``(client, owned)``: the client given, or one ``build`` makes from a URL (None:
    ``REDIS_URL``), which its user then owns and closes."""
    if client_or_url is None or isinstance(client_or_url, str):
        return build(client_or_url), True
    return client_or_url, False
