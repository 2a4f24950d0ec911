"""How the demo's outputs reach the worker (``rollguard demo --via``): rollguard's own events
(``kafka``, the default), or OpenTelemetry — the SDK's spans and evaluation events over
OTLP/HTTP to ``rollguard otlp`` (``otel``) or to the local OpenTelemetry Collector
(``otelcol``, a checkout's ``localservers/otelcol.py``: built from Go modules on first use),
which write the OTLP topics of the demo's run that its worker reads."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

from rollguard.base.errors import ConfigError, ServiceUnavailable
from rollguard.demo.isolated import WorkerRun

START_S = 30.0


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return int(sock.getsockname()[1])


async def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServiceUnavailable("rollguard otlp", f"127.0.0.1:{port}",
                                     f"exited ({process.returncode}); see {log}")
        with contextlib.suppress(OSError):
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()
            return
        await asyncio.sleep(0.2)
    raise ServiceUnavailable("rollguard otlp", f"127.0.0.1:{port}", "not listening")


@contextlib.asynccontextmanager
async def otlp_receiver(run: WorkerRun) -> AsyncIterator[str]:
    """``rollguard otlp`` in a child process writing the run's OTLP topics; yields its
    OTLP/HTTP base URL; stopped with SIGTERM (and waited for) at the end."""
    port = _free_port()
    log = Path(".rollguard/runs") / f"{run.run_id}-otlp.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "rollguard.cli", "otlp"], stdout=out,
            stderr=subprocess.STDOUT, env=run.env(
                ROLLGUARD_OTLP_ADDR=f"127.0.0.1:{port}",
                ROLLGUARD_OTLP_PARTITIONS=str(run.partitions)))
    try:
        await _wait_listening(port, process, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, 30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.asynccontextmanager
async def collector(run: WorkerRun) -> AsyncIterator[str]:
    """The local OpenTelemetry Collector on a free port, its kafka exporter writing the
    run's OTLP topics; yields its OTLP/HTTP base URL; stopped at the end."""
    try:
        from localservers.managed import stop_started
        from localservers.otelcol import Collector, up_collector
    except ImportError as exc:
        raise ConfigError("--via otelcol needs a checkout of rollguard (localservers/ builds "
                          "and starts the Collector); --via otel needs none") from exc
    from rollguard.base.config import Address

    # Not keyed by trace id: the demo's one worker reads every partition, so the join needs
    # no keys, and keyed, the exporter writes a message per trace: 3,600 a second at --speed 90.
    wanted = Collector("otelcol-demo", Address("127.0.0.1", _free_port()), "otlp_proto",
                       run.topic("otlp_logs"), run.topic("otlp_spans"), keyed=False)
    started = await asyncio.to_thread(up_collector, wanted)
    try:
        yield started.endpoint
    finally:
        await asyncio.to_thread(stop_started, started)


def endpoint(run: WorkerRun, via: str) -> contextlib.AbstractAsyncContextManager[str]:
    """The OTLP/HTTP endpoint the demo's instrumented service exports to, while it runs."""
    return otlp_receiver(run) if via == "otel" else collector(run)
