"""The worker's settings: every one an environment variable with a default."""

from __future__ import annotations

import os
from dataclasses import dataclass

from rollguard.config import DEV_SECRET, kafka_bootstrap, redis_url, secret_from_env
from rollguard.errors import ConfigError

# How often live state is written to the table. Each write of a service costs about 0.2-0.3 ms
# (its open bucket summed exactly, then encoded) plus a changelog record, so with 1,000 busy
# services a 2 s interval spent about a fifth of the worker's CPU on checkpoints
# (bench/fleet_throughput.py); 5 s costs less than a tenth. A crash re-reads at most this
# much of the events topic; decisions are checkpointed at once regardless.
DEFAULT_CHECKPOINT_S = 5.0

# (variable, default, meaning) — `rollguard worker --help` prints this table.
VARIABLES: tuple[tuple[str, str, str], ...] = (
    ("KAFKA_BOOTSTRAP", "127.0.0.1:9092", "Kafka brokers, host:port[,host:port]"),
    ("REDIS_URL", "redis://127.0.0.1:6379/0", "Redis holding version pointers and history"),
    ("ROLLGUARD_POLICY", "(shipped default)", "policy file, YAML or TOML"),
    ("ROLLGUARD_SECRET", "(dev default, warns)", "shared secret signing rollback commands"),
    ("ROLLGUARD_APP_ID", "rollguard", "Faust app id = consumer group and table prefix"),
    ("ROLLGUARD_TOPIC_EVENTS", "rollguard.events", "evaluation events in (keyed by service)"),
    ("ROLLGUARD_TOPIC_COMMANDS", "rollguard.commands", "rollback commands and approvals"),
    ("ROLLGUARD_TOPIC_ALERTS", "rollguard.alerts", "alerts for operators"),
    ("ROLLGUARD_TOPIC_AUDIT", "rollguard.audit", "every decision and every outcome"),
    ("ROLLGUARD_TOPIC_DEAD", "rollguard.dead-letters", "invalid events with the reason"),
    ("ROLLGUARD_PARTITIONS", "4", "partitions of the events topic and its tables"),
    ("ROLLGUARD_DATA_DIR", ".rollguard/worker", "Faust's data folder"),
    ("ROLLGUARD_CHECKPOINT_S", str(DEFAULT_CHECKPOINT_S),
     "seconds between writes of live state to the table"),
)


def _get(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


def _seconds(name: str, default: str) -> float:
    raw = _get(name, default)
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 3600.0:
        raise ConfigError(f"{name}: must be a number of seconds in [0, 3600], got {raw!r}")
    return value


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

    @property
    def secret_is_default(self) -> bool:
        return self.secret == DEV_SECRET

    @classmethod
    def from_env(cls) -> WorkerSettings:
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
            secret=secret_from_env()[0],
            app_id=_get("ROLLGUARD_APP_ID", "rollguard"),
            topic_events=_get("ROLLGUARD_TOPIC_EVENTS", "rollguard.events"),
            topic_commands=_get("ROLLGUARD_TOPIC_COMMANDS", "rollguard.commands"),
            topic_alerts=_get("ROLLGUARD_TOPIC_ALERTS", "rollguard.alerts"),
            topic_audit=_get("ROLLGUARD_TOPIC_AUDIT", "rollguard.audit"),
            topic_dead=_get("ROLLGUARD_TOPIC_DEAD", "rollguard.dead-letters"),
            partitions=partitions,
            data_dir=_get("ROLLGUARD_DATA_DIR", ".rollguard/worker"),
            checkpoint_s=_seconds("ROLLGUARD_CHECKPOINT_S", str(DEFAULT_CHECKPOINT_S)),
        )

    def topics(self) -> dict[str, int]:
        """Every topic the worker uses, with its partition count."""
        return {
            self.topic_events: self.partitions,
            self.topic_commands: 1,  # one partition: commands execute in the order sent
            self.topic_alerts: 1,
            self.topic_audit: 1,
            self.topic_dead: 1,
        }


def describe(variables: tuple[tuple[str, str, str], ...] = VARIABLES) -> str:
    """The settings (``(name, default, meaning)`` rows) as a table for ``--help``."""
    width = max(len(name) for name, _, _ in variables)
    return "\n".join(f"{name:<{width}}  {meaning} [default: {default}]"
                     for name, default, meaning in variables)

