"""The local OpenTelemetry Collector: OTLP/HTTP in, the kafka exporter out to the local
broker, as a service's Collector would write rollguard's topics
(``scripts/services up --otel``; the tests start one on demand). Its binary is built once
from Go modules (:mod:`localservers.otelcol_build`); its configuration is written into
``.rollguard/otelcol/config.yaml`` at each start. Standard library only."""

from __future__ import annotations

import http.client
import os
from dataclasses import dataclass

from localservers.managed import (
    Managed,
    require_local,
    say_stopped,
    spawn,
    stop_started,
    wait_until_answers,
)
from localservers.otelcol_build import cached_binary, collector_binary
from rollguard.base.config import Address, kafka_bootstrap
from rollguard.base.errors import ConfigError
from rollguard.streams.settings import (
    DEFAULT_OTLP_LOGS,
    DEFAULT_OTLP_SPANS,
    OTLP_ENCODINGS,
)

OTELCOL_PORT = int(os.environ.get("ROLLGUARD_OTELCOL_PORT", "4328"))  # OTLP/HTTP
START_S = 30.0

CONFIG = """\
# Written by localservers/otelcol.py at each start: OTLP/HTTP in, the local Kafka out.
receivers:
  otlp:
    protocols:
      http:
        endpoint: {endpoint}
processors:
  batch: {{}}
exporters:
  kafka:
    brokers: [{brokers}]
    logs:
      topic: {logs_topic}
      encoding: {encoding}
    traces:
      topic: {spans_topic}
      encoding: {encoding}
    producer:
      required_acks: -1
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    logs:
      receivers: [otlp]
      processors: [batch]
      exporters: [kafka]
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [kafka]
"""


@dataclass(frozen=True)
class Collector(Managed):
    """A Collector receiving OTLP/HTTP at ``address`` and writing ``encoding``
    (``otlp_proto`` or ``otlp_json``) to the topics, at ``brokers`` (default:
    ``KAFKA_BOOTSTRAP``)."""

    encoding: str = "otlp_proto"
    logs_topic: str = DEFAULT_OTLP_LOGS
    spans_topic: str = DEFAULT_OTLP_SPANS
    brokers: str = ""

    def __post_init__(self) -> None:
        if self.encoding not in OTLP_ENCODINGS:
            raise ConfigError(f"the Collector's encoding must be one of "
                              f"{', '.join(OTLP_ENCODINGS)}, got {self.encoding!r}")

    @property
    def endpoint(self) -> str:
        """The OTLP/HTTP base URL an SDK exporter is given (``/v1/logs`` appended)."""
        return f"http://{self.address}"

    @property
    def config_file(self) -> str:
        return str(self.folder / "config.yaml")

    def config(self) -> str:
        brokers = [b.strip() for b in (self.brokers or kafka_bootstrap()).split(",")]
        return CONFIG.format(endpoint=self.address, brokers=", ".join(brokers),
                             logs_topic=self.logs_topic, spans_topic=self.spans_topic,
                             encoding=self.encoding)

    def answers(self) -> bool:
        return http_answers(self.address)


def http_answers(address: Address, timeout: float = 2.0) -> bool:
    """True when an HTTP server answers at ``address`` (the OTLP receiver says 405 to a
    GET of ``/v1/logs``; any answer will do)."""
    connection = http.client.HTTPConnection(address.host, address.port, timeout=timeout)
    try:
        connection.request("GET", "/v1/logs")
        return connection.getresponse().status > 0
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def otelcol(encoding: str = "otlp_proto") -> Collector:
    """The Collector ``scripts/services up --otel`` starts, at ``ROLLGUARD_OTELCOL_PORT``."""
    return Collector("otelcol", Address("127.0.0.1", OTELCOL_PORT), encoding)


def up_collector(collector: Collector) -> Collector:
    """Make ``collector`` answer with its configuration: build the binary on first use,
    write the configuration, start it (again, when it runs here with another one)."""
    config_path = collector.folder / "config.yaml"
    wanted = collector.config()
    current = config_path.read_text() if config_path.exists() else None
    if collector.answers() and (current == wanted or not collector.started_pid()):
        return collector
    stop_started(collector)
    require_local(collector, "ROLLGUARD_OTELCOL_PORT")
    binary = collector_binary()
    collector.folder.mkdir(parents=True, exist_ok=True)
    config_path.write_text(wanted)
    pid = spawn(collector, [str(binary), "--config", str(config_path)])
    wait_until_answers(collector, pid, START_S)
    return collector


def report_up() -> None:
    """``scripts/services up --otel``."""
    collector = up_collector(otelcol())
    print(f"{collector.name}: answering at {collector.endpoint} (OTLP/HTTP; kafka exporter "
          f"{collector.encoding} to {collector.logs_topic}, {collector.spans_topic}; "
          f"config {collector.config_file})")


def report_status() -> None:
    """``scripts/services status``: the Collector's line, when it was built or runs."""
    collector = otelcol()
    pid = collector.started_pid()
    if pid is None and cached_binary() is None:
        return
    state = "answering" if collector.answers() else "not running"
    owner = f"started here, pid {pid}" if pid else "not started here"
    print(f"{collector.name}: {state} at {collector.endpoint} ({owner})")


def report_down() -> None:
    """``scripts/services down``: stops the Collector if ``up --otel`` started it here."""
    collector = otelcol()
    pid = stop_started(collector)
    if pid:
        say_stopped(collector, pid)
