"""Start, stop and check the local Apache Kafka broker and Redis server the project runs on.

Standard library only, so that ``scripts/services up`` (``python3 -m localservers up``) works
before the virtual environment exists. ``up`` reuses a server already answering at
``KAFKA_BOOTSTRAP`` / ``REDIS_URL`` (a ``docker compose up kafka redis`` for instance) and
``down`` stops only the processes ``up`` started, by the process ids it recorded. Redis is
probed as ``REDIS_URL`` says (TLS, its login, every cluster seed:
:mod:`localservers.redis_probe`); only a plaintext single redis-server is started here, never a
TLS server or a cluster. ``up --otel`` also starts a local OpenTelemetry Collector writing
to the broker (built from Go modules on first use: :mod:`localservers.otelcol`).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

from localservers import redis_probe
from localservers.kafka_server import start_kafka
from localservers.managed import (
    Managed,
    redis_answers,
    require_local,
    say_stopped,
    spawn,
    stop_started,
    wait_until_answers,
)
from localservers.packages import kcat_binary, redis_server_binary
from rollguard.base.config import kafka_address, redis_address, redis_url
from rollguard.base.errors import ConfigError, RollguardError, ServiceUnavailable


def kafka() -> Managed:
    return Managed("kafka", kafka_address())


@dataclass(frozen=True)
class RedisService(Managed):
    """The Redis of ``REDIS_URL``, probed as the URL says (TLS, login, every cluster seed):
    :mod:`localservers.redis_probe`. Only a plaintext single server can be started here."""

    target: redis_probe.RedisTarget | None = None

    def answers(self) -> bool:
        if self.target is None:
            return redis_answers(self.address)
        return redis_probe.answers(self.target)

    @property
    def described(self) -> str:
        return self.target.url if self.target else str(self.address)


def redis() -> RedisService:
    url = redis_url()
    target = None if url.startswith("unix://") else redis_probe.RedisTarget.from_url(url)
    return RedisService("redis", redis_address(), target)


def start_redis(service: Managed) -> int:
    binary = redis_server_binary()
    data = service.folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    return spawn(service, [
        binary, "--bind", service.address.host, "--port", str(service.address.port),
        "--dir", str(data), "--appendonly", "yes", "--appendfsync", "everysec",
        "--save", "", "--daemonize", "no", "--protected-mode", "no",
    ])


# --- commands ------------------------------------------------------------------------------

STARTERS = {
    "kafka": (start_kafka, "KAFKA_BOOTSTRAP", 120.0),
    "redis": (start_redis, "REDIS_URL", 30.0),
}


def up() -> None:
    """Make both servers answer; start the ones that don't. Install the tools the tests
    need (kcat) where they are missing."""
    try:
        print(f"kcat: {kcat_binary()}")
    except (ConfigError, subprocess.CalledProcessError) as exc:
        print(f"kcat: not installed, the cross-client tests will fail ({exc})")
    for service in (redis(), kafka()):
        if service.answers():
            owner = "started here" if service.started_pid() else "reused"
            print(f"{service.name}: answering at {_where(service)} ({owner})")
            continue
        if isinstance(service, RedisService) and service.target and not service.target.startable:
            raise ServiceUnavailable("Redis", service.described, (
                f"not answering PING ({service.target.kind}); this script starts only a "
                "plaintext single redis-server: start this one yourself, or point REDIS_URL "
                "at redis://127.0.0.1:6379/0"))
        start, setting, timeout = STARTERS[service.name]
        require_local(service, setting)
        pid = start(service)
        wait_until_answers(service, pid, timeout)
        print(f"{service.name}: started at {service.address} (pid {pid}, log {service.log_file})")


def down() -> None:
    """Stop what ``up`` started (by recorded pid); leave anything else running."""
    for service in (kafka(), redis()):
        say_stopped(service, stop_started(service))



def status() -> bool:
    """Print each server's state; True when both answer."""
    healthy = True
    for service in (kafka(), redis()):
        answering = service.answers()
        healthy &= answering
        pid = service.started_pid()
        owner = f"started here, pid {pid}" if pid else "not started here"
        state = "answering" if answering else "NOT answering"
        print(f"{service.name}: {state} at {_where(service)} ({owner})")
    return healthy


def _where(service: Managed) -> str:
    """The address, and for Redis what the probe checked (TLS, cluster seeds, login)."""
    if isinstance(service, RedisService) and service.target is not None:
        target = service.target
        checked = [target.kind] + (["logged in"] if target.password is not None else [])
        if target.cluster:
            checked.append(f"PING to {len(target.nodes)} seed node(s)")
        return f"{target.url} ({', '.join(checked)})"
    return str(service.address)


def main(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    secure = "--secure" in argv[1:]  # also the SASL_SSL broker of localservers/secure_kafka.py
    otel = "--otel" in argv[1:]  # also the OpenTelemetry Collector of localservers/otelcol.py
    try:
        if command == "up":
            up()
            if secure:
                from localservers.secure_kafka import report_up
                report_up()
            if otel:
                from localservers.otelcol import report_up as report_otelcol_up
                report_otelcol_up()
        elif command == "down":
            down()
            if secure:
                from localservers.secure_kafka import report_down
                report_down()
            from localservers.otelcol import report_down as report_otelcol_down
            report_otelcol_down()  # whenever up --otel or a test session left it running
        elif command == "status":
            healthy = status()
            from localservers.otelcol import report_status
            report_status()
            return 0 if healthy else 1
        else:
            print("usage: services up|down|status [--secure] [--otel]", file=sys.stderr)
            return 2
    except (RollguardError, subprocess.CalledProcessError) as exc:
        print(f"services {command}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
