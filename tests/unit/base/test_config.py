"""Settings come from environment variables and bad values are named."""

from __future__ import annotations

import pytest

from rollguard.base import config
from rollguard.base.errors import ConfigError


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:9092", config.Address("127.0.0.1", 9092)),
        ("kafka:29092,other:1", config.Address("kafka", 29092)),
        ("PLAINTEXT://broker:9093", config.Address("broker", 9093)),
        ("broker", config.Address("broker", 9092)),
    ],
)
def test_kafka_address_is_parsed_from_bootstrap(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: config.Address
) -> None:
    """KAFKA_BOOTSTRAP accepts host:port lists and an optional scheme."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP", value)
    assert config.kafka_address() == expected


@pytest.mark.parametrize("value", ["host:port", "host:0", "host:70000"])
def test_bad_kafka_bootstrap_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """A malformed KAFKA_BOOTSTRAP names the setting."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP", value)
    with pytest.raises(ConfigError, match="KAFKA_BOOTSTRAP"):
        config.kafka_address()


def test_bad_redis_url_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """A REDIS_URL that is not a redis:// URL names the setting."""
    monkeypatch.setenv("REDIS_URL", "http://example")
    with pytest.raises(ConfigError, match="REDIS_URL"):
        config.redis_address()


def test_defaults_point_at_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without settings, both servers are expected on loopback at their usual ports."""
    monkeypatch.delenv("KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert config.kafka_address() == config.Address("127.0.0.1", 9092)
    assert config.redis_address() == config.Address("127.0.0.1", 6379)
