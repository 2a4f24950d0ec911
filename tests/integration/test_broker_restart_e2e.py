"""End to end on a private Kafka broker (the shared one is never touched) and the shared
Redis: the broker is stopped (SIGTERM, a controlled shutdown) or killed (SIGKILL, a crash)
and started again — same port, same data — while a regression's events flow; the running
worker recovers by itself and the rollback is decided and applied exactly once. Both cases
share the module's one broker, each with topics and a consumer group of its own. On the
same broker, stopped and started again: ``rollguard otlp`` answers 503 while it is away,
and the OpenTelemetry SDK's exporter retries until its records are on Kafka."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
import requests
from aiokafka.errors import KafkaError
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

from rollguard.base.errors import ServiceUnavailable
from tests.support.e2e import (
    REGRESSION,
    T0,
    applied_rollbacks,
    new_service,
    produce,
    read_topic,
    scenario_events,
    setup_service,
    stop,
)
from tests.support.otel import evaluation, running_otlp, tail
from tests.support.private_kafka import PrivateBroker
from tests.support.runs import IsolatedRun, wait_processed

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("servers")]

CHUNKS = 12  # the regression's events after the cut are sent in this many steps
RETRY_S = 0.5  # between attempts to send a chunk while the broker is away


@pytest.fixture(name="broker", scope="module")
def fixture_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateBroker]:
    """One private broker for the module; every Kafka client of the tests (and the workers
    they start) uses it, through KAFKA_BOOTSTRAP."""
    broker = PrivateBroker.on_free_ports(tmp_path_factory.mktemp("kafka"))
    broker.start()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KAFKA_BOOTSTRAP", broker.bootstrap)
        try:
            yield broker
        finally:
            broker.stop()


@pytest.fixture(name="run")
def fixture_run(broker: PrivateBroker) -> IsolatedRun:
    # The broker and its topics are discarded with the module: nothing to delete.
    return IsolatedRun.new("broker-restart", partitions=2)


async def send_until_delivered(run: IsolatedRun, events: list[dict[str, Any]]) -> int:
    """Send ``events``, again and again while the broker is away (a message sent twice is
    a duplicate the worker drops by event id); how many attempts failed."""
    failed = 0
    while True:
        try:
            await produce(run, events)
            return failed
        except (KafkaError, ServiceUnavailable):
            failed += 1
            await asyncio.sleep(RETRY_S)


async def flow_with_a_restart(run: IsolatedRun, broker: PrivateBroker,
                              events: list[dict[str, Any]], sig: signal.Signals,
                              ) -> tuple[int, bool]:
    """Send ``events`` in :data:`CHUNKS` steps while the broker is stopped with ``sig``
    after the first and started again; attempts that failed, and whether the broker had
    shut down cleanly."""
    step = -(-len(events) // CHUNKS)
    chunks = [events[i:i + step] for i in range(0, len(events), step)]
    await send_until_delivered(run, chunks[0])
    await asyncio.to_thread(broker.stop, sig)
    clean = broker.shut_down_cleanly()
    restarted = asyncio.create_task(asyncio.to_thread(broker.start))
    failed = 0
    for chunk in chunks[1:]:
        failed += await send_until_delivered(run, chunk)
    await restarted
    return failed, clean


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_a_broker_restarted_during_a_regression_gives_one_rollback_without_help(
        broker: PrivateBroker, run: IsolatedRun, sig: signal.Signals) -> None:
    """Stopped or killed after the regression began and before it was decided: once the
    broker is back, the same worker decides the rollback once and the pointer flips once."""
    service = new_service()
    store = await setup_service(run, service, canary_percent=50)
    events = scenario_events(service, REGRESSION)
    onset = next(i for i, e in enumerate(events) if e["ts"] >= REGRESSION.regression_at + T0)
    cut = onset + (len(events) - onset) // 6  # inside the regression, before a decision
    worker = run.start_worker()
    try:
        await produce(run, events[:cut])
        await wait_processed(run)
        assert (await store.read(service)).candidate == "v2", "decided before the restart"
        failed, clean = await flow_with_a_restart(run, broker, events[cut:], sig)
        await wait_processed(run, timeout=180)
        assert worker.poll() is None, "the same worker process, never restarted by hand"
    finally:
        stop(worker)
    assert failed > 0, "events were sent while the broker was away"
    assert clean == (sig == signal.SIGTERM), "SIGKILL left the logs to be recovered"
    history = await store.history(service, count=200)
    pointer = await store.read(service)
    await store.client.aclose()
    assert len(applied_rollbacks(history)) == 1
    assert pointer.candidate is None and pointer.active == "v1"
    commands = [c for c in await read_topic(run.topic("commands")) if c.get("type") == "command"]
    audit = await read_topic(run.topic("audit"))
    decisions = [a for a in audit if a.get("type") == "decision" and a["action"] == "rollback"]
    outcomes = [(a["status"], a["command_id"]) for a in audit if a.get("type") == "outcome"]
    assert len(commands) == len(decisions) == 1, "the rollback decided exactly once"
    assert outcomes == [("applied", commands[0]["command"]["command_id"])]


RETRY_AFTER_S = 15  # the SDK tries 6 times: 5 waits of 17 s leave the broker 85 s to start
ONE_RECORD = b'{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"eventName":"e"}]}]}]}'


async def test_rollguard_otlp_answers_503_while_kafka_is_away_and_the_sdk_retries(
        broker: PrivateBroker) -> None:
    """Nothing is acknowledged that Kafka has not: with the broker stopped, a request gets
    503 with Retry-After; the SDK's exporter, sending meanwhile, gets 503 and retries, and
    its records are on Kafka once the broker is back."""
    statuses: list[int] = []
    session = requests.Session()
    session.hooks["response"].append(lambda answer, **_: statuses.append(answer.status_code))
    first, sent = evaluation(), evaluation()
    with running_otlp(KAFKA_BOOTSTRAP=broker.bootstrap, ROLLGUARD_OTLP_ACK_TIMEOUT_S="2",
                      ROLLGUARD_OTLP_RETRY_AFTER_S=str(RETRY_AFTER_S)) as receiver:
        exporter = OTLPLogExporter(f"{receiver.url}/v1/logs", session=session,
                                   timeout=5 * (RETRY_AFTER_S + 2) + 30)
        async with tail(receiver.topic_logs, broker.bootstrap) as logs:
            assert (await asyncio.to_thread(exporter.export, first.logs)).name == "SUCCESS"
            await logs.until(lambda v: first.marker.encode() in v)
            await asyncio.to_thread(broker.stop)
            try:
                async with aiohttp.ClientSession() as client, client.post(
                        f"{receiver.url}/v1/logs", data=ONE_RECORD,
                        headers={"Content-Type": "application/json"}) as answer:
                    assert (answer.status, answer.headers["Retry-After"]) == (
                        503, str(RETRY_AFTER_S))
                exporting = asyncio.create_task(asyncio.to_thread(exporter.export, sent.logs))
                async with asyncio.timeout(30):
                    while 503 not in statuses:
                        await asyncio.sleep(0.1)
            finally:
                await asyncio.to_thread(broker.start)
            assert (await exporting).name == "SUCCESS"
            await logs.until(lambda v: sent.marker.encode() in v, timeout=120)
    exporter.shutdown()
    assert statuses[0] == 200 and statuses[-1] == 200 and 503 in statuses[1:-1], statuses
    assert "answered 503" in receiver.printed()
