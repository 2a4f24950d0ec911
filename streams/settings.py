"""The worker's settings: every one an environment variable with a default."""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field

from rollguard.actions.receipt import RECEIPT_CONFIG
from rollguard.actions.respond import COMMAND_TTL_S
from rollguard.base.config import (
    DEV_SECRET,
    KAFKA_SECURITY_VARIABLES,
    KafkaSecurity,
    kafka_bootstrap,
    redis_url,
    secret_from_env,
)
from rollguard.base.errors import ConfigError
from rollguard.base.redact import redact_text

log = logging.getLogger(__name__)
STATE_TABLE = "monitor-state"  # the Faust table of the monitors' states

# How often live state is written to the table. Each write of a service costs about 0.2-0.3 ms
# (its open bucket summed exactly, then encoded) plus a changelog record, so with 1,000 busy
# services a 2 s interval spent about a fifth of the worker's CPU on checkpoints
# (bench/fleet_throughput.py); 5 s costs less than a tenth. A crash re-reads at most this
# much of the events topic; decisions are checkpointed at once regardless.
DEFAULT_CHECKPOINT_S = 5.0
EVENT_LOOPS = ("uvloop", "asyncio")
DEFAULT_EVENT_LOOP = "asyncio"

DEFAULT_METRICS_ADDR = "127.0.0.1:9471"

# The OpenTelemetry Collector kafka exporter's default topics and encoding (docs/opentelemetry.md).
DEFAULT_OTLP_LOGS = "otlp_logs"
DEFAULT_OTLP_SPANS = "otlp_spans"
OTLP_ENCODINGS = ("otlp_proto", "otlp_json")
DEFAULT_OTLP_ENCODING = "otlp_proto"

# How long the group waits for a silent worker (SIGKILL, lost host) before its partitions
# go to the others: the better part of the time its services go unjudged (bench/scale_out.py).
# Kafka brokers refuse less than group.min.session.timeout.ms (6 s unless configured).
DEFAULT_SESSION_TIMEOUT_S = 10.0

# (variable, default, meaning) — `rollguard worker --help` prints this table: the defaults,
# never the values set (a password or secret would be printed with them).
VARIABLES: tuple[tuple[str, str, str], ...] = (
    ("KAFKA_BOOTSTRAP", "127.0.0.1:9092", "Kafka brokers, host:port[,host:port]"),
    *KAFKA_SECURITY_VARIABLES,
    ("REDIS_URL", "redis://127.0.0.1:6379/0", "Redis holding version pointers and history"),
    ("REDIS_URL_FILE", "(none)", "a file holding REDIS_URL instead (it carries the password)"),
    ("ROLLGUARD_POLICY", "(shipped default)", "policy file, YAML or TOML"),
    ("ROLLGUARD_SECRET", "(required)", "shared secret signing rollback commands"),
    ("ROLLGUARD_SECRET_FILE", "(none)", "a file holding ROLLGUARD_SECRET instead"),
    ("ROLLGUARD_NAMESPACE", "rollguard", "prefix of every Redis key and channel (deployments)"),
    ("ROLLGUARD_APP_ID", "rollguard", "Faust app id = consumer group and table prefix"),
    ("ROLLGUARD_TOPIC_EVENTS", "rollguard.events", "evaluation events in (keyed by service)"),
    ("ROLLGUARD_TOPIC_COMMANDS", "rollguard.commands", "rollback commands and approvals"),
    ("ROLLGUARD_TOPIC_ALERTS", "rollguard.alerts", "alerts for operators"),
    ("ROLLGUARD_TOPIC_AUDIT", "rollguard.audit", "every decision and every outcome"),
    ("ROLLGUARD_TOPIC_DEAD", "rollguard.dead-letters", "invalid events with the reason"),
    ("ROLLGUARD_TOPIC_OTLP_LOGS", DEFAULT_OTLP_LOGS,
     "the OpenTelemetry Collector's logs (evaluation results) in; empty: not read"),
    ("ROLLGUARD_TOPIC_OTLP_SPANS", DEFAULT_OTLP_SPANS,
     "the OpenTelemetry Collector's spans (GenAI outputs) in; empty: not read"),
    ("ROLLGUARD_OTLP_ENCODING", DEFAULT_OTLP_ENCODING,
     "encoding of both OTLP topics, as the Collector's kafka exporter writes: otlp_proto "
     "or otlp_json"),
    ("ROLLGUARD_PARTITIONS", "4",
     "partitions of the events topic when the worker creates it (an existing topic's count "
     "is adopted)"),
    ("ROLLGUARD_DATA_DIR", ".rollguard/worker", "Faust's data folder"),
    ("ROLLGUARD_CHECKPOINT_S", str(DEFAULT_CHECKPOINT_S),
     "seconds between writes of live state to the table"),
    ("ROLLGUARD_COMMAND_TTL_S", str(COMMAND_TTL_S),
     "seconds a rollback command may take to reach the actuator (kept after, while Redis "
     "is away)"),
    ("ROLLGUARD_METRICS_ADDR", DEFAULT_METRICS_ADDR,
     "host:port serving Prometheus /metrics; empty: none"),
    ("ROLLGUARD_EVENT_LOOP", DEFAULT_EVENT_LOOP,
     "the worker's event loop: uvloop or asyncio"),
    ("ROLLGUARD_SESSION_TIMEOUT_S", str(DEFAULT_SESSION_TIMEOUT_S),
     "seconds before a silent worker's partitions move to the others (≥ the broker's "
     "group.min.session.timeout.ms)"),
)


def _get(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


def _seconds(name: str, default: str, least: float = 0.0) -> float:
    raw = _get(name, default)
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not least <= value <= 3600.0:
        raise ConfigError(f"{name}: must be a number of seconds in [{least:g}, 3600], "
                          f"got {raw!r}")
    return value


def _event_loop() -> str:
    name = _get("ROLLGUARD_EVENT_LOOP", DEFAULT_EVENT_LOOP).lower()
    if name not in EVENT_LOOPS:
        raise ConfigError(f"ROLLGUARD_EVENT_LOOP: must be one of {', '.join(EVENT_LOOPS)}, "
                          f"got {name!r}")
    return name


def _otlp_topic(name: str, default: str) -> str:
    # Unset: the Collector's default topic; set to nothing (or blanks): that input is off.
    raw = os.environ.get(name)
    return default if raw is None else raw.strip()


def _otlp_encoding() -> str:
    name = _get("ROLLGUARD_OTLP_ENCODING", DEFAULT_OTLP_ENCODING).lower()
    if name not in OTLP_ENCODINGS:
        raise ConfigError(f"ROLLGUARD_OTLP_ENCODING: must be one of {', '.join(OTLP_ENCODINGS)}"
                          f", got {name!r}")
    return name


def _command_ttl_s() -> float:
    ttl = _seconds("ROLLGUARD_COMMAND_TTL_S", str(COMMAND_TTL_S))
    if ttl < 1.0:  # a command must be able to cross Kafka
        raise ConfigError(f"ROLLGUARD_COMMAND_TTL_S: must be at least 1 second, got {ttl}")
    return ttl


def host_port(name: str, raw: str) -> tuple[str, int] | None:
    """``(host, port)`` of an address ``host:port`` (IPv6 as ``[::1]:port``); None when
    ``raw`` is empty (the variable is set, to nothing: the feature is off).

    >>> host_port("X", "127.0.0.1:9471"), host_port("X", "[::1]:80"), host_port("X", " ")
    (('127.0.0.1', 9471), ('::1', 80), None)
    >>> host_port("X", "9471")
    Traceback (most recent call last):
    rollguard.detectors.errors.ConfigError: X: must be host:port (port 1-65535) or empty, got '9471'
    """
    text = raw.strip()
    if not text:
        return None
    host, _, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if host and port.isdigit() and 1 <= int(port) <= 65535:
        return host, int(port)
    raise ConfigError(f"{name}: must be host:port (port 1-65535) or empty, got {raw!r}")


@dataclass(frozen=True)
class WorkerSettings:
    """All of the worker's settings; ``from_env()`` reads them."""

    kafka_bootstrap: str
    redis_url: str
    policy_path: str | None
    secret: bytes
    app_id: str
    topic_events: str
    topic_commands: str
    topic_alerts: str
    topic_audit: str
    topic_dead: str
    partitions: int
    data_dir: str
    checkpoint_s: float = DEFAULT_CHECKPOINT_S
    command_ttl_s: float = COMMAND_TTL_S
    metrics_addr: tuple[str, int] | None = None  # None: no /metrics endpoint
    session_timeout_s: float = DEFAULT_SESSION_TIMEOUT_S
    event_loop: str = DEFAULT_EVENT_LOOP
    kafka_security: KafkaSecurity = field(default_factory=KafkaSecurity)
    topic_otlp_logs: str = ""  # "": not read
    topic_otlp_spans: str = ""
    otlp_encoding: str = DEFAULT_OTLP_ENCODING

    def __repr__(self) -> str:  # settings may be logged: no secret, no password in a URL
        shown = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k != "secret")
        return redact_text(f"WorkerSettings({shown})")

    @property
    def secret_is_default(self) -> bool:
        return self.secret == DEV_SECRET

    @classmethod
    def from_env(cls, dev: bool = False) -> WorkerSettings:
        """Read and check every setting; without a secret only ``dev`` falls back to the
        development secret (see :func:`rollguard.base.config.secret_from_env`)."""
        raw_partitions = _get("ROLLGUARD_PARTITIONS", "4")
        try:
            partitions = int(raw_partitions)
        except ValueError:
            partitions = 0
        if partitions < 1:
            raise ConfigError(
                f"ROLLGUARD_PARTITIONS: must be a whole number ≥ 1, got {raw_partitions!r}"
            )
        return cls(
            kafka_bootstrap=kafka_bootstrap(),
            redis_url=redis_url(),
            policy_path=os.environ.get("ROLLGUARD_POLICY") or None,
            secret=secret_from_env(dev)[0],
            app_id=_get("ROLLGUARD_APP_ID", "rollguard"),
            topic_events=_get("ROLLGUARD_TOPIC_EVENTS", "rollguard.events"),
            topic_commands=_get("ROLLGUARD_TOPIC_COMMANDS", "rollguard.commands"),
            topic_alerts=_get("ROLLGUARD_TOPIC_ALERTS", "rollguard.alerts"),
            topic_audit=_get("ROLLGUARD_TOPIC_AUDIT", "rollguard.audit"),
            topic_dead=_get("ROLLGUARD_TOPIC_DEAD", "rollguard.dead-letters"),
            partitions=partitions,
            data_dir=_get("ROLLGUARD_DATA_DIR", ".rollguard/worker"),
            checkpoint_s=_seconds("ROLLGUARD_CHECKPOINT_S", str(DEFAULT_CHECKPOINT_S)),
            command_ttl_s=_command_ttl_s(),
            kafka_security=KafkaSecurity.from_env(),
            metrics_addr=host_port("ROLLGUARD_METRICS_ADDR",
                                   os.environ.get("ROLLGUARD_METRICS_ADDR", DEFAULT_METRICS_ADDR)),
            session_timeout_s=_seconds("ROLLGUARD_SESSION_TIMEOUT_S",
                                       str(DEFAULT_SESSION_TIMEOUT_S), least=1.0),
            event_loop=_event_loop(),
            topic_otlp_logs=_otlp_topic("ROLLGUARD_TOPIC_OTLP_LOGS", DEFAULT_OTLP_LOGS),
            topic_otlp_spans=_otlp_topic("ROLLGUARD_TOPIC_OTLP_SPANS", DEFAULT_OTLP_SPANS),
            otlp_encoding=_otlp_encoding(),
        )

    @property
    def topic_by_service(self) -> str:
        """The internal topic of events forwarded to the partition that owns their service
        (:mod:`rollguard.streams.partition`); co-partitioned with the events topic and the table."""
        return f"{self.app_id}-events-by-service"

    @property
    def topic_fleet(self) -> str:
        """The internal topic of the fleet's moves, read whole by every worker
        (:mod:`rollguard.streams.fleet`)."""
        return f"{self.app_id}-fleet"

    @property
    def topic_changelog(self) -> str:
        """Faust's changelog topic of the state table."""
        return f"{self.app_id}-{STATE_TABLE}-changelog"

    def adopting(self, existing: dict[str, int]) -> WorkerSettings:
        """These settings with the partition count of the events topic when it exists
        already (``existing``: topic name → partition count), so that a topic created by
        someone else, with any count, works; the worker's own partitioned topics must then
        have that count too, or it cannot start (their data is placed by that count).
        """
        count = existing.get(self.topic_events, self.partitions)
        if count != self.partitions:
            log.warning("the events topic %s has %d partitions: the worker uses %d "
                        "(ROLLGUARD_PARTITIONS=%d applies only to a topic it creates)",
                        self.topic_events, count, count, self.partitions)
        for topic in (self.topic_by_service, self.topic_changelog):
            if existing.get(topic, count) != count:
                raise ConfigError(
                    f"the events topic {self.topic_events} has {count} partitions but "
                    f"{topic} has {existing[topic]}: they must be equal (a service's state "
                    f"lives on the partition its key hashes to). Give the worker a new "
                    f"ROLLGUARD_APP_ID (it starts with empty state), or recreate {topic} "
                    f"with {count} partitions")
        return dataclasses.replace(self, partitions=count)

    @property
    def otlp_topics(self) -> dict[str, str]:
        """The OTLP topics the worker reads, by signal (``logs``, ``traces``)."""
        found = {"logs": self.topic_otlp_logs, "traces": self.topic_otlp_spans}
        return {signal: topic for signal, topic in found.items() if topic}

    def topics(self) -> dict[str, int]:
        """Every topic the worker uses, with its partition count (the OTLP topics, when
        the worker creates them, with the events topic's: Faust then gives each worker the
        same partition numbers of all of them)."""
        return {
            **dict.fromkeys(self.otlp_topics.values(), self.partitions),
            self.topic_events: self.partitions,
            self.topic_by_service: self.partitions,
            self.topic_commands: 1,  # one partition: commands execute in the order sent
            self.topic_alerts: 1,
            self.topic_audit: 1,
            self.topic_dead: 1,
            self.topic_fleet: 1,
        }

    def topic_configs(self) -> dict[str, dict[str, str]]:
        """The settings a topic is created with, where the worker needs any: the commands
        topic records when the broker received each command (:mod:`rollguard.actions.receipt`);
        the fleet topic keeps the moves of the last 6 hours."""
        return {self.topic_commands: dict(RECEIPT_CONFIG),
                self.topic_fleet: {"retention.ms": str(6 * 3600 * 1000)}}


def describe(variables: tuple[tuple[str, str, str], ...] = VARIABLES) -> str:
    """The settings (``(name, default, meaning)`` rows) as a table for ``--help``."""
    width = max(len(name) for name, _, _ in variables)
    return "\n".join(f"{name:<{width}}  {meaning} [default: {default}]"
                     for name, default, meaning in variables)

