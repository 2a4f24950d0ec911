"""One isolated run of the worker: its own topics, consumer group, data folder and secret.

The demo, the end-to-end tests and the benchmarks each start workers this way, so runs never
share topics or offsets.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from rollguard.config import kafka_bootstrap, redis_url
from streams.connect import consumer
from streams.settings import WorkerSettings

ROLES = ("events", "commands", "alerts", "audit", "dead")


@dataclass(frozen=True)
class IsolatedRun:
    run_id: str
    partitions: int = 4
    secret: str = "isolated-run-secret"

    @classmethod
    def new(cls, prefix: str, partitions: int = 4) -> IsolatedRun:
        return cls(f"{prefix}-{uuid.uuid4().hex[:8]}", partitions)

    @property
    def app_id(self) -> str:
        return f"rg-{self.run_id}"

    def topic(self, role: str) -> str:
        return f"{self.run_id}.{role}"

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "KAFKA_BOOTSTRAP": kafka_bootstrap(),
            "REDIS_URL": redis_url(),
            "ROLLGUARD_APP_ID": self.app_id,
            **{f"ROLLGUARD_TOPIC_{r.upper()}": self.topic(r) for r in ROLES},
            "ROLLGUARD_PARTITIONS": str(self.partitions),
            "ROLLGUARD_DATA_DIR": f".rollguard/runs/{self.run_id}",
            "ROLLGUARD_SECRET": self.secret,
            **extra,
        }

    def settings(self) -> WorkerSettings:
        saved = dict(os.environ)
        try:
            os.environ.update(self.env())
            return WorkerSettings.from_env()
        finally:
            os.environ.clear()
            os.environ.update(saved)

    async def delete_topics(self) -> None:
        """Delete the run's topics and Faust's topics of its app (changelogs): a broker that
        keeps thousands of finished runs' partitions gets slower for every later one."""
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap())
        await admin.start()
        try:
            mine = [t for t in await admin.list_topics()
                    if t.startswith((f"{self.run_id}.", f"{self.app_id}-"))]
            if mine:
                await admin.delete_topics(mine)
        finally:
            await admin.close()

    def start_worker(self, log_path: Path | None = None, **extra: str) -> subprocess.Popen[bytes]:
        """``rollguard worker`` in a child process, logging to ``log_path``."""
        path = log_path or Path(".rollguard/runs") / f"{self.run_id}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "rollguard.cli", "worker", "--loglevel", "info"],
                env=self.env(**extra), stdout=log, stderr=subprocess.STDOUT,
            )


async def committed_offsets(admin: AIOKafkaAdminClient, group: str,
                            topic: str) -> dict[int, int]:
    """The offsets ``group`` has committed on ``topic``, by partition."""
    offsets = await admin.list_consumer_group_offsets(group)
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}


async def wait_processed(run: IsolatedRun, timeout: float = 90.0) -> None:
    """Wait until the worker's group has committed every message of the events topic."""
    topic = run.topic("events")
    async with consumer(group_id=None) as probe:
        tps = [TopicPartition(topic, p) for p in range(run.partitions)]
        ends = {tp.partition: o for tp, o in (await probe.end_offsets(tps)).items()}
    admin = AIOKafkaAdminClient(bootstrap_servers=run.env()["KAFKA_BOOTSTRAP"])
    await admin.start()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = await committed_offsets(admin, run.app_id, topic)
            if all(done.get(p, 0) >= end for p, end in ends.items()):
                return
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
    raise TimeoutError(f"worker {run.app_id} did not catch up with {topic} in {timeout}s")
