"""End to end with every real part: a service instrumented with the real OpenTelemetry
Python SDK (GenAI spans, OTLP/HTTP) and an evaluator in a process of its own (the SDK's
evaluation events, parented to the output's span or naming its response id, from its own
resource) → the real Collector built by the project's services script, keyed by trace id as
docs/opentelemetry.md says → the real broker → the real worker → Redis: the regressing canary
is rolled back once, the healthy one never; in both of the exporter's encodings. Event time
is the SDK's real time, so the policy judges 1-second buckets."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import orjson
import pytest
import yaml

from localservers.managed import stop_started
from localservers.otelcol import Collector, up_collector
from rollguard.actions.pointer import PointerStore
from rollguard.base.config import Address
from rollguard.demo.isolated import wait_for_worker_ready
from rollguard.streams.connect import consumer
from rollguard.streams.wire import read_message
from tests.support.e2e import new_service, read_topic, rollback_count, setup_service
from tests.support.otlp import ENCODINGS
from tests.support.otlp_runs import OTLP_ROLES, item_ids
from tests.support.policies import default_policy_document
from tests.support.ports import free_port
from tests.support.runs import IsolatedRun, wait_processed

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("servers")]

RATE = 60.0  # outputs a second of each service, half of them on the canary


@pytest.fixture(name="run")
async def fixture_run() -> AsyncIterator[IsolatedRun]:
    run = IsolatedRun.new("otel-chain", partitions=2)
    yield run
    await run.delete_topics()


@pytest.fixture(name="policy")
def fixture_policy(tmp_path: Path) -> str:
    """The default policy in 1-second buckets with 4-second blips: real time is short."""
    document = default_policy_document()
    document.update(bucket_seconds=1, blip_seconds=4)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return str(path)


@contextlib.contextmanager
def collector(run: IsolatedRun, encoding: str) -> Iterator[Collector]:
    """The project's local Collector (localservers/otelcol.py, as the ``otelcol`` and
    ``otelcol_json`` fixtures start it) on a free port, its kafka exporter writing
    ``encoding`` to the run's OTLP topics, which the run's worker reads."""
    name = "otelcol-chain" if encoding == "otlp_proto" else "otelcol-chain-json"
    started = up_collector(Collector(name, Address("127.0.0.1", free_port()), encoding,
                                     run.topic("otlp_logs"), run.topic("otlp_spans")))
    try:
        yield started
    finally:
        stop_started(started)


def stop(process: subprocess.Popen[bytes], grace_s: float = 0.0) -> None:
    """SIGTERM unless it exits by itself within ``grace_s``; waited for."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(grace_s)
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def chain(endpoint: str, bad: str, good: str) -> Iterator[
        tuple[dict[str, dict[str, int]], list[subprocess.Popen[bytes]]]]:
    """The service process piping each output to the evaluator process, both exporting to
    ``endpoint``; yields what each made, by service (filled in at the end, when both were
    stopped: SIGTERM, then the evaluator's input ends), and the two processes."""
    made: dict[str, dict[str, int]] = {}
    module = [sys.executable, "-m", "tests.support.otel_chain"]
    service = subprocess.Popen([*module, "service", endpoint, str(RATE), bad, good],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    evaluator = subprocess.Popen([*module, "evaluator", endpoint], stdin=service.stdout,
                                 stderr=subprocess.PIPE)
    assert service.stdout is not None
    service.stdout.close()  # the evaluator's now: it sees the end when the service exits
    try:
        yield made, [service, evaluator]
    finally:
        for name, process, grace_s in (("spans", service, 0.0),
                                       ("evaluations", evaluator, 30.0)):
            stop(process, grace_s)  # the evaluator ends with its input
            assert process.stderr is not None
            printed = process.stderr.read().decode()
            assert process.returncode == 0, printed[-3000:]
            made[name] = orjson.loads(printed.strip().splitlines()[-1])


async def rolled_back(store: PointerStore, service: str, timeout: float,
                      running: list[subprocess.Popen[bytes]]) -> float:
    """Wait until ``service``'s candidate is gone from its pointer (while the ``running``
    processes run); seconds it took."""
    started = time.monotonic()
    while (await store.read(service)).candidate is not None:
        assert time.monotonic() - started < timeout, f"{service} not rolled back"
        assert all(p.poll() is None for p in running), "the service or evaluator exited"
        await asyncio.sleep(0.2)
    return time.monotonic() - started


async def forwarded(run: IsolatedRun, service: str) -> int:
    """How many distinct events of ``service`` the worker forwarded to its partition."""
    found: set[str] = set()
    async with consumer(run.settings().topic_by_service, auto_offset_reset="earliest",
                        group_id=None) as into:
        quiet = 0
        while quiet < 3:
            batches = await into.getmany(timeout_ms=200)
            quiet = 0 if batches else quiet + 1
            for messages in batches.values():
                found.update(*(item_ids(read_message(m.value)) for m in messages
                               if m.key == service.encode()))
    return len(found)


async def wait_forwarded(run: IsolatedRun, service: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (seen := await forwarded(run, service)) < count:
        assert time.monotonic() < deadline, f"{seen} of {count} events of {service} forwarded"
        await asyncio.sleep(0.5)


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_sdk_service_and_evaluator_through_the_collector_roll_back_only_the_regression(
    run: IsolatedRun, policy: str, encoding: str,
) -> None:
    """A regression seen only in a separate evaluator's results (joined to the service's
    spans) is rolled back once; the healthy canary, whose every span and evaluation the
    worker forwarded and judged, never; no record is a dead letter."""
    bad, good = new_service(), new_service()
    store = await setup_service(run, bad, canary_percent=50)
    await setup_service(run, good, canary_percent=50)
    epoch = (await store.read(good)).epoch
    worker = run.start_worker(None, ROLLGUARD_OTLP_ENCODING=encoding, ROLLGUARD_POLICY=policy)
    try:
        with collector(run, encoding) as otelcol:
            await wait_for_worker_ready(run, worker)
            with chain(otelcol.endpoint, bad, good) as (made, processes):
                took = await rolled_back(store, bad, 45, processes)
                print(f"{encoding}: rolled back {took:.1f} s after the outputs began")
                await asyncio.sleep(2)  # the healthy canary judged after the rollback too
            await wait_forwarded(run, good, made["spans"][good] + made["evaluations"][good],
                                 timeout=30)
            await wait_processed(run, roles=OTLP_ROLES)
    finally:
        stop(worker)
    assert await rollback_count(store, bad) == 1
    assert await rollback_count(store, good) == 0 and (await store.read(good)).epoch == epoch
    assert not await read_topic(run.topic("dead"))  # every evaluation met its output's span
    await store.client.aclose()
