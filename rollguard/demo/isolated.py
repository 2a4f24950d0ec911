"""One isolated run of the worker: its own topics, consumer group and data folder, so a demo
never shares topics or offsets with another run (tests and benchmarks extend it in
tests/support/runs.py).

Its workers sign with the development secret, set explicitly in ROLLGUARD_SECRET: only the
demo and the test suite run with it, and the worker says so in its log."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from rollguard.base.config import DEV_SECRET, kafka_bootstrap, redis_url
from rollguard.streams.settings import WorkerSettings

ROLES = ("events", "commands", "alerts", "audit", "dead", "otlp_logs", "otlp_spans")


@dataclass(frozen=True)
class WorkerRun:
    run_id: str
    partitions: int = 4
    secret: str = DEV_SECRET.decode()

    @classmethod
    def new(cls, prefix: str, partitions: int = 4) -> Self:
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

    def start_worker(self, log_path: Path | None = None, **extra: str) -> subprocess.Popen[bytes]:
        """``rollguard worker`` in a child process, logging to ``log_path``."""
        path = log_path or Path(".rollguard/runs") / f"{self.run_id}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "rollguard.cli", "worker", "--loglevel", "info"],
                env=self.env(**extra), stdout=log, stderr=subprocess.STDOUT,
            )


async def wait_for_worker_ready(run: WorkerRun, process: subprocess.Popen[bytes],
                                timeout: float = 90.0) -> None:
    """The worker logs "Ready" once it has joined its group and recovered its tables."""
    log = Path(".rollguard/runs") / f"{run.run_id}.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the worker exited ({process.returncode}); see {log}")
        if log.exists() and b"Worker]: Ready" in log.read_bytes():
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"the worker was not ready in {timeout:.0f}s; see {log}")
