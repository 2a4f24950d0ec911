"""Shared fixtures: integration tests need the servers that `scripts/services up` starts.
And how deep the tests go: in full by default (`make test`), lighter with
HYPOTHESIS_PROFILE=quick (`make unit`)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from _pytest.nodeid import NodeId
from hypothesis import settings

from localservers import services
from localservers.managed import stop_started

if TYPE_CHECKING:
    from localservers.otelcol import Collector

# HYPOTHESIS_PROFILE=quick (`make unit`) runs every property test on a tenth of its examples
# (at least one, without a deadline: the quick loop often runs beside other work) and a case
# swept over seeds on its first seed only. Without it (`make test`) every test runs in full.
QUICK = os.environ.get("HYPOTHESIS_PROFILE") == "quick"
INTEGRATION = Path(__file__).parent / "integration"
QUICK_SHARE = 0.1
SESSION_SERVERS = "session-servers"
settings.register_profile("quick", max_examples=10, deadline=None)  # the default: 100
if QUICK:
    settings.load_profile("quick")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # With pytest-xdist (`make test`: two processes) a session-scoped server of ours (the
    # SASL_SSL broker, TLS Redis, Redis Clusters, Collectors) would be started by each
    # process that runs a test needing it, in one folder and on one port: those tests go to
    # one process (`--dist loadgroup`), the other tests wherever a process is free.
    grouping = bool(getattr(config.option, "loadgroup", False))  # set in xdist's processes
    for item in items:
        if INTEGRATION in item.path.parents and uses_a_session_server(item):
            item.add_marker(pytest.mark.xdist_group(SESSION_SERVERS))
            if grouping:
                in_group(item, SESSION_SERVERS)
    if QUICK:
        fewer_examples(items)
        first_seed_only(config, items)


def uses_a_session_server(item: pytest.Item) -> bool:
    """Whether ``item`` needs a session-scoped fixture of the suite's (a server started once
    per process) besides the plain broker and Redis every such test checks for."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    return any(defs[-1].scope == "session" and defs[-1].baseid.startswith("tests")
               and name != "servers" for name, defs in info.name2fixturedefs.items())


def in_group(item: pytest.Item, group: str) -> None:
    """Name ``item``'s xdist group in its node id, as pytest-xdist 3.8 means to: it sets
    ``item._nodeid``, which pytest 9.2 no longer reads (ids are ``item._id``), so without
    this a group is lost (seen: the session fixtures of two processes starting the secured
    broker in one folder at once)."""
    item._id = NodeId.parse(f"{item.nodeid}@{group}")


def fewer_examples(items: list[pytest.Item]) -> None:
    """A test's own ``@settings(max_examples=n)``, which no profile overrides, becomes
    ``ceil(n * QUICK_SHARE)``; the others follow the quick profile already."""
    for item in items:
        test = getattr(item, "obj", None)
        test = getattr(test, "__func__", test)  # a method's function
        if (not getattr(test, "_hypothesis_internal_settings_applied", False)
                or getattr(test, "_rollguard_quick", False)):  # parametrized: seen already
            continue
        own = test._hypothesis_internal_use_settings  # type: ignore[union-attr]
        test._hypothesis_internal_use_settings = settings(  # type: ignore[union-attr]
            own, max_examples=max(1, math.ceil(own.max_examples * QUICK_SHARE)), deadline=None)
        test._rollguard_quick = True  # type: ignore[union-attr]


def first_seed_only(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A case swept over seeds (``parametrize("seed", range(3))``) runs on its first seed
    only; a case with one seed of its own (``("latency_ms", 0), ("error", 1)``) runs as it is.
    The others are reported as deselected."""

    def seed_of(item: pytest.Item) -> tuple[tuple[str, str], Any] | None:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "seed" not in params:
            return None
        rest = sorted((k, repr(v)) for k, v in params.items() if k != "seed")
        return (item.nodeid.split("[")[0], repr(rest)), params["seed"]

    seeds: dict[tuple[str, str], list[Any]] = {}
    for item in items:
        if (found := seed_of(item)) is not None:
            seeds.setdefault(found[0], []).append(found[1])
    dropped = [item for item in items
               if (found := seed_of(item)) is not None and found[1] != min(seeds[found[0]])]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        left = set(dropped)
        items[:] = [item for item in items if item not in left]


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
    from tests.support.ports import free_port

    collector = Collector("otelcol-json", Address("127.0.0.1", free_port()), "otlp_json",
                          "rollguard-test.otlp_logs.json", "rollguard-test.otlp_spans.json")
    up_collector(collector)
    yield collector
    stop_started(collector)
