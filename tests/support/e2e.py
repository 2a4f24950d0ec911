"""Helpers for the end-to-end tests: a service with releases, events in, topics out; the
isolated run (fixture ``run``), a worker started and stopped, its /metrics scraped, the
notifier's settings, a child that ignores SIGINT."""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import aiohttp
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from rollguard.actions.connect import async_redis_client
from rollguard.actions.pointer import PointerStore
from rollguard.demo.run import prepare_service, promote
from rollguard.demo.scenario import Scenario, canary_events
from rollguard.notify.settings import NotifySettings
from rollguard.streams.connect import consumer, prepare_topics, producer
from tests.support.ports import free_port
from tests.support.runs import IsolatedRun

T0 = 1_763_856_000.0
REGRESSION = Scenario(rate=10.0, blip_s=0.0, duration=1200.0)
BLIP_ONLY = dataclasses.replace(REGRESSION, regression_at=10**9)
# A killed worker's partitions move after its session timeout: the least a broker accepts
# by default, so that kill-and-restart tests wait less (the worker's default is 10 s).
QUICK_TAKEOVER = {"ROLLGUARD_SESSION_TIMEOUT_S": "6"}
# What the notifier signs its webhooks with and pages PagerDuty with (notify_settings).
WEBHOOK_KEY = b"receiver-shared-key"
ROUTING_KEY = "rk-0123456789"


def scenario_events(service: str, scenario: Scenario, seed: int = 7) -> list[dict[str, Any]]:
    return canary_events(service, scenario, seed, T0)


async def setup_service(run: IsolatedRun, service: str, canary_percent: int) -> PointerStore:
    """Register v1 and v2, make v1 stable, then put v2 on ``canary_percent`` of traffic."""
    await prepare_topics(run.settings())
    store = PointerStore(async_redis_client(), run.secret.encode())
    await prepare_service(store, service, run.secret.encode())
    await promote(store, service, "v2", canary_percent, run.secret.encode())
    return store


async def produce(run: IsolatedRun, events: Iterable[dict[str, Any]], batch: int = 200,
                  raw_lines: Iterable[tuple[bytes | None, bytes]] = ()) -> None:
    """Send events batched per service (as the emitter does), plus any raw messages."""
    topic = run.topic("events")
    by_service: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_service.setdefault(event["service"], []).append(event)
    async with producer(linger_ms=5, max_request_size=2_000_000) as out:
        for service, items in by_service.items():
            for i in range(0, len(items), batch):
                await out.send(topic, orjson.dumps(items[i : i + batch]), key=service.encode())
        for key, value in raw_lines:
            await out.send(topic, value, key=key)
        await out.flush()


async def read_topic(
    topic: str, idle_s: float = 1.0, timeout: float = 20.0
) -> list[dict[str, Any]]:
    """Everything in a topic so far, as decoded JSON objects."""
    found: list[dict[str, Any]] = []
    async with consumer(topic, auto_offset_reset="earliest", group_id=None) as into:
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - quiet_since < idle_s:
            batches = await into.getmany(timeout_ms=200)
            for messages in batches.values():
                found.extend(orjson.loads(m.value) for m in messages)
                quiet_since = time.monotonic()
    return found


def new_service() -> str:
    return f"e2e-{uuid.uuid4().hex[:8]}"


async def send_commands(run: IsolatedRun, values: Iterable[bytes], key: str) -> None:
    """Put messages on the run's commands topic, as the monitor or `rollguard approve` do."""
    async with producer() as out:
        for value in values:
            await out.send_and_wait(run.topic("commands"), value, key=key.encode())


async def wait_for_audit(run: IsolatedRun, done: Callable[[list[dict[str, Any]]], bool],
                         timeout: float = 60.0) -> list[dict[str, Any]]:
    """Read the run's audit topic until ``done`` holds for the records so far; return them."""
    found: list[dict[str, Any]] = []
    async with consumer(run.topic("audit"), auto_offset_reset="earliest",
                        group_id=None) as into:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for messages in (await into.getmany(timeout_ms=200)).values():
                found.extend(orjson.loads(m.value) for m in messages)
            if done(found):
                return found
    raise TimeoutError(f"the audit topic never showed what was awaited: {found[-5:]}")


@pytest.fixture(name="run")
async def fixture_run() -> AsyncIterator[IsolatedRun]:
    run = IsolatedRun.new("e2e", partitions=2)
    yield run
    await run.delete_topics()


def start(run: IsolatedRun) -> subprocess.Popen[bytes]:
    return run.start_worker()


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def applied_rollbacks(history: list[dict]) -> list[dict]:
    return [h for h in history if h.get("op") == "rollback" and h.get("outcome") == "applied"]


async def rollback_count(store: PointerStore, service: str) -> int:
    """How many rollbacks of ``service`` were applied (its last 200 history entries)."""
    return len(applied_rollbacks(await store.history(service, count=200)))


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(url: str) -> Samples:
    """The samples /metrics serves now; empty while the worker does not answer yet."""
    try:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            text = await response.text()
    except aiohttp.ClientConnectionError:
        return {}
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def notify_settings(run: IsolatedRun, base: str, monkeypatch: pytest.MonkeyPatch
                    ) -> NotifySettings:
    """`rollguard notify`'s settings for ``run``: every destination at ``base`` (a local
    receiver), quick batches and retries, /metrics on a free port."""
    for name, value in run.env(
            ROLLGUARD_NOTIFY_SLACK=f"{base}/slack", ROLLGUARD_NOTIFY_WEBHOOK=f"{base}/webhook",
            ROLLGUARD_NOTIFY_WEBHOOK_SECRET=WEBHOOK_KEY.decode(),
            ROLLGUARD_NOTIFY_PAGERDUTY_KEY=ROUTING_KEY,
            ROLLGUARD_NOTIFY_PAGERDUTY_URL=f"{base}/pagerduty",
            ROLLGUARD_NOTIFY_BATCH_S="0.3", ROLLGUARD_NOTIFY_RETRY_S="0.1",
            ROLLGUARD_NOTIFY_METRICS_ADDR=f"127.0.0.1:{free_port()}").items():
        monkeypatch.setenv(name, value)
    return NotifySettings.from_env()


def ignoring_sigint() -> None:
    """For ``preexec_fn``: a child that starts with SIGINT ignored, as under nohup."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
