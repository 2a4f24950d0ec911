"""Shared fixtures: integration tests need the servers that `scripts/services up` starts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from localservers import services
from localservers.managed import stop_started

if TYPE_CHECKING:
    from localservers.otelcol import Collector


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


@pytest.fixture(name="otelcol", scope="session")
def fixture_otelcol(servers: None) -> Iterator[Collector]:
    """The local OpenTelemetry Collector of ``scripts/services up --otel``
    (localservers/otelcol.py): OTLP/HTTP in, ``otlp_proto`` to ``otlp_logs`` and
    ``otlp_spans`` on the local broker. Built from Go modules on the first use on a machine
    (about 4 min, then cached); started here only when it does not answer, and then stopped
    at the end."""
    from localservers.otelcol import otelcol, up_collector

    collector = otelcol()
    started_here = not collector.answers()
    up_collector(collector)
    yield collector
    if started_here:
        stop_started(collector)


@pytest.fixture(name="otelcol_json", scope="session")
def fixture_otelcol_json(servers: None) -> Iterator[Collector]:
    """A second local Collector, on a free port, whose kafka exporter writes ``otlp_json``
    to topics of its own (``rollguard-test.otlp_logs.json``, ``...spans.json``)."""
    from localservers.otelcol import Collector, up_collector
    from rollguard.base.config import Address
    from tests.support.redis_servers import free_port

    collector = Collector("otelcol-json", Address("127.0.0.1", free_port()), "otlp_json",
                          "rollguard-test.otlp_logs.json", "rollguard-test.otlp_spans.json")
    up_collector(collector)
    yield collector
    stop_started(collector)
