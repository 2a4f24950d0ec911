"""``rollguard demo``: the whole loop on this machine, in compressed time.

It brings the local servers up, starts a worker and a serving process, and runs a simulated
LLM service that serves v1, deploys v2 as a canary (with a harmless blip, then a real
regression) and emits one evaluation event per output. Event time runs ``speed`` times faster
than the wall clock; the detectors only ever see event time.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import orjson
from rich.console import Console
from rich.live import Live

from rollguard.actions.connect import async_redis_client, ping
from rollguard.actions.pointer import PointerStore
from rollguard.actions.reader import PointerReader
from rollguard.actions.state import PointerState
from rollguard.base.errors import ServiceUnavailable
from rollguard.demo.isolated import WorkerRun, wait_for_worker_ready
from rollguard.demo.page import hold, status_page
from rollguard.demo.ramp import Deployment, demo_policy, promote, verdict_line
from rollguard.demo.scenario import RELEASES, Scenario
from rollguard.demo.slack import capture_slack
from rollguard.demo.via import endpoint
from rollguard.demo.view import DemoState, explain_hint, render, summary
from rollguard.streams.connect import consumer, ensure_topics
from rollguard.streams.emitter import Emitter
from rollguard.streams.settings import WorkerSettings

T0 = 1_763_856_000.0  # event time of the simulation's start
DEMO_LINGER_S = 0.05

@dataclass(frozen=True)
class DemoOptions:
    scenario: Scenario
    speed: float = 30.0
    seed: int = 1
    service: str = "support-bot"
    linger_after_switch_s: float = 60.0  # simulated seconds shown after servers switched
    hold_s: float = 0.0  # wall-clock seconds the status page stays up after the end
    via: str = "kafka"  # or "otel" (rollguard otlp), "otelcol": see rollguard.demo.via


class Outputs(Protocol):
    """Where the simulated service reports each output: rollguard's :class:`Emitter`, or
    :class:`rollguard.demo.otel.OtelEmitter` (spans and evaluation events)."""

    async def start(self) -> None: ...

    def emit(self, service: str, release: str, metrics: Mapping[str, float | bool], *,
             ts: float) -> bool: ...

    async def close(self) -> None: ...


async def follow_topic(topic: str, handle: Callable[[dict[str, object]], None]) -> None:
    async with consumer(topic, auto_offset_reset="earliest", group_id=None) as into:
        async for message in into:
            handle(orjson.loads(message.value))


async def follow_server(process: subprocess.Popen[bytes],
                        handle: Callable[[dict[str, object]], None]) -> None:
    assert process.stdout is not None
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, process.stdout.readline)
        if not line:
            return
        handle(orjson.loads(line))


@contextlib.asynccontextmanager
async def children(run: WorkerRun, service: str, worker_env: dict[str, str]) -> AsyncIterator[
        tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]]:
    worker = run.start_worker(None, **worker_env)
    server = subprocess.Popen(
        [sys.executable, "-m", "rollguard.cli", "demo-server", service],
        env=run.env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    try:
        yield worker, server
    finally:
        for process in (server, worker):
            process.terminate()
        for process in (server, worker):
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


class Simulation:
    """Emits the simulated service's outputs, routing each request through the pointer."""

    def __init__(self, options: DemoOptions, state: DemoState, emitter: Outputs,
                 reader: PointerReader) -> None:
        self.options = options
        self.state = state
        self.emitter = emitter
        self.reader = reader
        self.rng = random.Random(options.seed)
        self.emitted_until = 0.0

    def emit_until(self, sim_t: float) -> None:
        scenario, step = self.options.scenario, 1.0 / self.options.scenario.rate
        while self.emitted_until + step <= sim_t:
            self.emitted_until += step
            t = self.emitted_until
            user = f"user-{self.rng.randrange(50_000)}"
            release, components = self.reader.resolve(user)
            metrics = scenario.metrics(components, t, self.rng)
            self.emitter.emit(self.state.service, release, metrics, ts=T0 + t)
            self.state.record(release, t, metrics)


def describe_pointer(pointer: PointerState) -> str:
    """One line for the view: what the pointer in Redis says now."""
    staged = (f", candidate {pointer.candidate} on {pointer.percent:.0f} %"
              if pointer.candidate else "")
    pin = ", pinned" if pointer.pinned else ""
    return f"epoch {pointer.epoch}: active {pointer.active}, stable {pointer.stable}{staged}{pin}"


def _num(record: dict[str, object], key: str) -> float:
    value = record.get(key)
    return float(value) if isinstance(value, int | float | str) else float("nan")


class Observer:
    """Folds what the worker, the actuator and the serving process report into the view."""

    def __init__(self, state: DemoState) -> None:
        self.state = state
        self.server_lines: list[tuple[float, object]] = []

    def on_alert(self, alert: dict[str, object]) -> None:
        kind, verdict = alert.get("type"), alert.get("verdict")
        when = f"[{_num(alert, 'ts') - T0:5.0f}s]" if "ts" in alert else "[     ]"
        if kind == "alert":
            self.state.alerts.append(f"{when} {verdict}: {alert.get('reason')}")
            if verdict == "transient":
                self.state.milestones.transient_alerts += 1
        elif kind == "outcome":
            epochs = f"epoch {alert.get('epoch_before')} -> {alert.get('epoch_after')}"
            self.state.alerts.append(f"        {alert.get('op')} {alert.get('status')}: {epochs}")
        elif kind == "rollout":
            self.state.alerts.append(f"        rollout {alert.get('action')} at "
                                     f"{_num(alert, 'percent'):g} %: {alert.get('reason')}")
            self.state.timeline.append(verdict_line(alert, self.state.sim_of(_num(alert,
                                                                                   "at"))))
        else:
            self.state.alerts.append(f"{when} {kind}: {alert.get('why') or alert.get('reason')}")

    def on_audit(self, record: dict[str, object]) -> None:
        m = self.state.milestones
        if record.get("type") == "decision" and record.get("action") == "rollback":
            m.rollbacks += 1
            m.decided_sim = _num(record, "ts") - T0
            m.decided_wall = _num(record, "at")
            self.state.alerts.append(f"[{m.decided_sim:5.0f}s] ROLLBACK decided: "
                                     f"{record.get('reason')}")
            self._find_switch()
        if record.get("type") == "outcome" and record.get("status") == "applied":
            m.applied_wall = _num(record, "at")

    def on_server(self, line: dict[str, object]) -> None:
        candidate = line.get("candidate")
        share = f" + {candidate} on {_num(line, 'percent'):.0f} %" if candidate else ""
        self.state.server = (f"epoch {line.get('epoch')}: {line.get('active')} "
                             f"(model {line.get('model')}){share}")
        self.server_lines.append((_num(line, "wall"), line.get("epoch")))
        self._find_switch()

    def _find_switch(self) -> None:
        """The first pointer change the server saw after the decision is the switch: a full
        rollback drops the candidate, a partial one replaces it with a derived release.
        (The server's report and the decision arrive by different paths, in either order.)"""
        m = self.state.milestones
        if m.decided_wall is None or m.switched_wall is not None:
            return
        before = [epoch for wall, epoch in self.server_lines if wall < m.decided_wall]
        for wall, epoch in self.server_lines:
            if wall >= m.decided_wall and (not before or epoch != before[-1]):
                m.switched_wall = wall
                return


async def prepare_service(store: PointerStore, service: str, secret: bytes,
                          releases: tuple[str, ...] = ("v1", "v2")) -> None:
    """Register ``releases`` (v1 and v2) and make v1 the active, stable release."""
    for name in releases:
        await store.register_release(service, name, RELEASES[name])
    await promote(store, service, "v1", None, secret)


async def run_simulated_service(options: DemoOptions) -> None:
    """Only the simulated service (for docker compose): a worker runs elsewhere."""
    settings = WorkerSettings.from_env()
    client = async_redis_client(settings.redis_url)
    store = PointerStore(client, settings.secret)
    await prepare_service(store, options.service, settings.secret, releases(options.scenario))
    emitter = Emitter(settings.topic_events, settings.kafka_bootstrap, linger_s=DEMO_LINGER_S)
    await emitter.start()
    reader = PointerReader(client, options.service)
    await reader.start()
    state = DemoState(service=options.service, speed=options.speed)
    try:
        await simulate(options, state, emitter, reader, store, settings.secret, Console())
    finally:
        await reader.stop()
        await emitter.close()
        await client.aclose()


async def require_servers(settings: WorkerSettings) -> None:
    """Raise ServiceUnavailable, saying how to start them, unless Kafka and Redis answer: the
    demo runs on servers already up (``make demo`` starts local ones first)."""
    client = async_redis_client()
    try:
        await ping(client)
        await ensure_topics(settings.topics(), configs=settings.topic_configs())
    except ServiceUnavailable as exc:
        raise ServiceUnavailable(exc.what, exc.address, "the demo needs Kafka and Redis "
                                 "running: `make demo` (or `scripts/services up`) in a "
                                 "checkout starts local ones") from exc
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def service_outputs(run: WorkerRun, via: str, service: str,
                          console: Console) -> AsyncIterator[Outputs]:
    """The simulated service's outputs, started; flushed and closed at the end: rollguard's
    events on the run's events topic, or (``via`` otel, otelcol) OpenTelemetry."""
    emitter: Outputs
    if via == "kafka":
        # The demo's event time runs --speed times faster than the clock: a short linger
        # keeps a batch within a few simulated seconds.
        emitter = Emitter(run.topic("events"), linger_s=DEMO_LINGER_S)
        await emitter.start()
        try:
            yield emitter
        finally:
            await emitter.close()
        return
    from rollguard.demo.otel import OtelEmitter

    async with endpoint(run, via) as url:
        how = "rollguard otlp" if via == "otel" else "an OpenTelemetry Collector"
        console.print(f"the service reports each output as an OpenTelemetry GenAI span and "
                      f"evaluation events (the SDK, OTLP/HTTP) to {how} at {url}")
        emitter = OtelEmitter(service, url)
        try:
            yield emitter
        finally:
            await emitter.close()


def releases(scenario: Scenario) -> tuple[str, ...]:
    """The releases a scenario's service registers: v1, v2 and those it rolls out."""
    return tuple(dict.fromkeys(("v1", "v2", *scenario.rollouts)))


def demo_worker_env(run: WorkerRun, options: DemoOptions, env: dict[str, str],
                    console: Console) -> dict[str, str]:
    """``env`` and, for rollouts, the demo's policy: what the demo's worker is told besides
    the run."""
    if not options.scenario.rollout_steps:
        return env
    path = demo_policy(Path(".rollguard/runs") / f"{run.run_id}-policy.yaml")
    console.print(f"the worker judges the rollouts by the shipped policy with looser "
                  f"tolerances on the rare binary metrics: {path}", soft_wrap=True)
    return {**env, "ROLLGUARD_POLICY": str(path)}


async def run_demo(options: DemoOptions, console: Console) -> DemoState:
    """Run the whole demo; returns the final state (the summary is printed too)."""
    run = WorkerRun.new("demo", partitions=2)
    secret = run.secret.encode()
    service = f"{options.service}-{run.run_id[-8:]}"
    state = DemoState(service=service, speed=options.speed)
    observer = Observer(state)
    settings = run.settings()
    await require_servers(settings)
    client = async_redis_client()
    store = PointerStore(client, secret)
    await prepare_service(store, service, secret, releases(options.scenario))
    console.print(f"starting the worker and a serving process for {service} (commands signed "
                  "with the development secret: a demo on a laptop) ...")
    async with (status_page(run, service, console) as (worker_env, page_url),
                capture_slack(run, state, console, page_url) as slack,
                children(run, service, demo_worker_env(run, options, worker_env, console)
                         ) as (worker, server),
                service_outputs(run, options.via, service, console) as emitter):
        await wait_for_worker_ready(run, worker)
        slack.start()
        reader = PointerReader(client, service)
        await reader.start()
        followers = [
            asyncio.create_task(follow_topic(run.topic("alerts"), observer.on_alert)),
            asyncio.create_task(follow_topic(run.topic("audit"), observer.on_audit)),
            asyncio.create_task(follow_server(server, observer.on_server)),
        ]
        try:
            await simulate(options, state, emitter, reader, store, secret, console)
            console.print(summary(state))
            console.print(explain_hint(options.scenario))
            await hold(options.hold_s, console)
        finally:
            slack.stop_soon()
            for task in followers:
                task.cancel()
            await asyncio.gather(*followers, return_exceptions=True)
            await reader.stop()
    await client.aclose()
    return state


async def simulate(options: DemoOptions, state: DemoState, emitter: Outputs,
                   reader: PointerReader, store: PointerStore, secret: bytes,
                   console: Console) -> None:
    scenario = options.scenario
    simulation = Simulation(options, state, emitter, reader)
    deployment = Deployment(scenario, state, store, secret, console)
    wall0 = time.monotonic()
    state.wall0 = time.time()
    live = Live(render(state), console=console, auto_refresh=False,
                transient=False) if console.is_terminal else None
    last_print, told = 0.0, 0
    with live or contextlib.nullcontext():
        while True:
            sim_t = (time.monotonic() - wall0) * options.speed
            await deployment.tick(reader.state, sim_t)
            simulation.emit_until(sim_t)
            state.sim_t = sim_t
            state.pointer = describe_pointer(reader.state)
            for line in state.timeline[told:]:  # the rollouts' verdicts, as they come
                console.print(line, soft_wrap=True)
            told = len(state.timeline)
            if live is not None:
                live.update(render(state), refresh=True)
            elif sim_t - last_print >= 60:
                last_print = sim_t
                console.print(f"simulated {sim_t:5.0f}s  {state.phase:<11} {state.server}",
                              soft_wrap=True)
            switched = state.milestones.switched_wall
            if sim_t >= scenario.duration or (
                    switched is not None
                    and (time.time() - switched) * options.speed > options.linger_after_switch_s):
                return
            await asyncio.sleep(0.1)
