"""Settings read from environment variables; every part of rollguard uses these."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlparse

from rollguard.errors import ConfigError

DEFAULT_KAFKA_BOOTSTRAP = "127.0.0.1:9092"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
SECRET_ENV = "ROLLGUARD_SECRET"
# For a laptop only: anyone who reads this line can sign commands for a server that uses it.
# The one development default: the worker and the CLI must agree on it, or commands issued
# from the CLI on a laptop are refused by the worker as wrongly signed.
DEV_SECRET = b"rollguard-dev-secret"


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def kafka_bootstrap() -> str:
    """``KAFKA_BOOTSTRAP``: comma-separated ``host:port`` list of Kafka brokers."""
    return _env("KAFKA_BOOTSTRAP", DEFAULT_KAFKA_BOOTSTRAP)


def redis_url() -> str:
    """``REDIS_URL``: the Redis server holding version pointers and history."""
    return _env("REDIS_URL", DEFAULT_REDIS_URL)


def secret_from_env() -> tuple[bytes, bool]:
    """``ROLLGUARD_SECRET``, the HMAC key of commands, and whether the dev default stands in.

    >>> import os; os.environ["ROLLGUARD_SECRET"] = " "; secret_from_env() == (DEV_SECRET, True)
    True
    >>> del os.environ["ROLLGUARD_SECRET"]
    """
    value = _env(SECRET_ENV, "")
    return (value.encode(), False) if value else (DEV_SECRET, True)


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_host_port(value: str, *, setting: str, default_port: int) -> Address:
    """Parse ``host:port`` (the first of a comma-separated list).

    >>> parse_host_port("127.0.0.1:9092,other:9093", setting="KAFKA_BOOTSTRAP", default_port=9092)
    Address(host='127.0.0.1', port=9092)
    """
    first = value.split(",")[0].strip()
    if "://" in first:
        first = first.split("://", 1)[1]
    host, _, port = first.rpartition(":")
    if not host:
        host, port = first, str(default_port)
    try:
        number = int(port)
    except ValueError:
        raise ConfigError(f"{setting}: port must be a number, got {value!r}") from None
    if not host or not 0 < number < 65536:
        raise ConfigError(f"{setting}: expected host:port, got {value!r}")
    return Address(host, number)


def kafka_address() -> Address:
    return parse_host_port(kafka_bootstrap(), setting="KAFKA_BOOTSTRAP", default_port=9092)


def redis_address() -> Address:
    """Host and port of ``REDIS_URL``.

    >>> import os; os.environ["REDIS_URL"] = "redis://localhost:6390/2"; redis_address()
    Address(host='localhost', port=6390)
    >>> del os.environ["REDIS_URL"]
    """
    url = redis_url()
    if url.split("://")[0] in ("redis+cluster", "rediss+cluster"):  # the first seed node
        return parse_host_port(url.split("@")[-1].split("/")[0].split("?")[0],
                               setting="REDIS_URL", default_port=6379)
    parsed = urlparse(url)
    if parsed.scheme not in ("redis", "rediss", "unix") or (
        parsed.scheme != "unix" and not parsed.hostname
    ):
        raise ConfigError(f"REDIS_URL: expected redis://host:port/db, got {parsed.scheme}://…")
    return Address(parsed.hostname or "localhost", parsed.port or 6379)
