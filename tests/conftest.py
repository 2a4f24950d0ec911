"""Shared fixtures: integration tests need the servers that `scripts/services up` starts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from localservers import services
from localservers.managed import stop_started


@pytest.fixture(name="servers", scope="session")
def fixture_servers() -> None:
    """Fail with a clear message (not a hang) when Kafka or Redis is not running."""
    missing = [s for s in (services.kafka(), services.redis()) if not s.answers()]
    if missing:
        names = ", ".join(f"{s.name} at {s.address}" for s in missing)
        pytest.fail(f"not answering: {names}; run `scripts/services up` (or `make test`)")


@pytest.fixture(name="secure_kafka", scope="session")
def fixture_secure_kafka(servers: None) -> Iterator[dict[str, str]]:
    """The SASL_SSL broker (localservers/secure_kafka.py), one for the whole session: its client
    settings (KAFKA_BOOTSTRAP, KAFKA_SECURITY_PROTOCOL, ...). Started here only when it does
    not answer yet, and then stopped at the end."""
    from localservers.secure_kafka import secure_kafka, up_secure

    broker = secure_kafka()
    started_here = not broker.answers()
    up_secure()
    yield broker.client_env()
    if started_here:
        stop_started(broker)


@pytest.fixture(name="mtls_kafka", scope="session")
def fixture_mtls_kafka(secure_kafka: dict[str, str]) -> dict[str, str]:
    """The same broker's SSL listener, which requires a client certificate: the settings
    of a client that has one (KAFKA_SSL_CERTFILE, KAFKA_SSL_KEYFILE)."""
    from localservers.secure_kafka import secure_kafka as the_broker

    return the_broker().mtls_client_env()
