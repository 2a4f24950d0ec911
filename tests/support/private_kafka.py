"""A private single-node Kafka broker on free loopback ports, for tests that stop and start
the broker itself (never the shared one): the same properties and start-up as
``scripts/services up`` (:mod:`localservers.kafka_server`), its data and log in a folder of the
test's own."""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path

from localservers.kafka_server import kafka_properties, start_broker
from localservers.managed import Managed, kafka_answers, stop_started, wait_until_answers
from rollguard.base.config import Address
from tests.support.ports import free_port

START_S = 120.0  # a JVM starting on a busy 2-core machine


@dataclass(frozen=True)
class PrivateBroker(Managed):
    """A broker whose files live in ``home``; stopping and starting it keeps its port,
    its controller port (the next one) and its data, as a restarted production broker."""

    home: Path = Path()

    @classmethod
    def on_free_ports(cls, home: Path) -> PrivateBroker:
        return cls("kafka-private", Address("127.0.0.1", free_port(also_free=1)), home)

    @property
    def folder(self) -> Path:
        return self.home

    @property
    def bootstrap(self) -> str:
        return str(self.address)

    def answers(self) -> bool:
        return kafka_answers(self.address)

    def start(self) -> None:
        """Start the broker (formatting its storage the first time); return once it answers."""
        config = self.home / "server.properties"
        self.home.mkdir(parents=True, exist_ok=True)
        config.write_text(kafka_properties(self.address, self.home / "data",
                                           controller=self.address.port + 1))
        wait_until_answers(self, start_broker(self, config, []), START_S)

    def shut_down_cleanly(self) -> bool:
        """Whether the broker's last stop closed its logs: Kafka leaves a marker in its log
        folder then (and deletes it when it starts); a crash leaves none, and the next start
        recovers the logs."""
        return (self.home / "data" / ".kafka_cleanshutdown").exists()

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Send ``sig`` — SIGTERM, a controlled shutdown, or SIGKILL, a crash that leaves
        its logs unclosed for the next start to recover — and wait until the process is
        gone."""
        stop_started(self, sig)
