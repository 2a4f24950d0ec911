"""`rollguard drill` on the real broker and Redis, against a real worker and notifier: it
passes on a healthy deployment, twice in a row, marked as a drill everywhere and paging
nobody; it fails, naming the hop, when the worker is stopped, when the notifier's
destination refuses, and when the worker's Redis user may not write the pointer. Whatever
happened, the drill service is left with its stable release alone."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import orjson
import pytest
import redis
import yaml

from rollguard.actions.acl import writer_rules
from rollguard.actions.connect import async_redis_client
from rollguard.actions.drills import DrillRecords
from rollguard.actions.keys import ServiceKeys
from rollguard.actions.pointer import PointerStore
from rollguard.actions.state import PointerState
from rollguard.base.config import redis_url
from rollguard.base.errors import UnknownService
from rollguard.demo.isolated import wait_for_worker_ready
from rollguard.demo.receiver import Answer, Receiver, accept_all, receiving
from rollguard.notify.service import run_notifier
from rollguard.streams.connect import prepare_topics
from tests.support.e2e import ignoring_sigint, notify_settings, read_topic, scrape, value
from tests.support.policies import default_policy_document
from tests.support.ports import free_port
from tests.support.runs import IsolatedRun

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("servers")]
PASSWORD = "pw-drill-worker-never-printed"
HOPS = ("canary promoted", "events accepted", "rollback decided", "command issued",
        "pointer flipped", "reader switched", "notification delivered")


@pytest.fixture(name="run")
async def fixture_run() -> AsyncIterator[IsolatedRun]:
    run = IsolatedRun.new("e2e-drill", partitions=1)
    await prepare_topics(run.settings())
    yield run
    await run.delete_topics()


@pytest.fixture(name="service")
async def fixture_service() -> AsyncIterator[str]:
    """A drill service of this test's own; its keys are deleted afterwards."""
    service = f"rollguard-drill-{uuid.uuid4().hex[:8]}"
    yield service
    client = async_redis_client()
    keys = [k async for k in client.scan_iter(match=ServiceKeys.of(service).pattern)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture(name="policy")
def fixture_policy(tmp_path: Path) -> str:
    """The default policy in 2-second buckets with 10-second blips: a drill's regression is
    judged in about 30 s of event time (a minute and a half with the shipped policy)."""
    document = default_policy_document()
    document.update(bucket_seconds=2, blip_seconds=10)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return str(path)


@contextlib.contextmanager
def worker(run: IsolatedRun, policy: str, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    process = run.start_worker(None, ROLLGUARD_POLICY=policy, **env)
    try:
        yield process
    finally:
        process.terminate()
        process.wait(30)


@contextlib.asynccontextmanager
async def notifier(run: IsolatedRun, answer: Answer, monkeypatch: pytest.MonkeyPatch,
                   ) -> AsyncIterator[tuple[Receiver, str]]:
    """``rollguard notify`` posting to a local receiver (Slack, webhook, PagerDuty) that
    answers as ``answer`` says; yields the receiver and the notifier's /metrics URL."""
    with receiving(Receiver(answer)) as (got, base):
        settings = notify_settings(run, base, monkeypatch)
        assert settings.metrics_addr is not None
        stop = asyncio.Event()
        task = asyncio.create_task(run_notifier(settings, stop, from_beginning=True))
        try:
            yield got, "http://{}:{}/metrics".format(*settings.metrics_addr)
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)


async def start_drill(run: IsolatedRun, service: str, policy: str, notify_url: str | None,
                      *args: str, ignore_sigint: bool = False) -> asyncio.subprocess.Process:
    """``rollguard drill`` in a child process (with SIGINT ignored, as a background job)."""
    env = run.env(ROLLGUARD_POLICY=policy, PYTHONUNBUFFERED="1",
                  **({"ROLLGUARD_DRILL_NOTIFY_URL": notify_url} if notify_url else {}))
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rollguard.cli", "drill", "--service", service, *args,
        *(() if notify_url else ("--no-notify",)), env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, preexec_fn=ignoring_sigint if ignore_sigint else None)


async def finished(child: asyncio.subprocess.Process) -> tuple[int, str]:
    """The exit code of a drill's child process and what it printed."""
    out, _ = await asyncio.wait_for(child.communicate(), 240)
    assert child.returncode is not None
    return child.returncode, out.decode()


async def drill(run: IsolatedRun, service: str, policy: str, notify_url: str | None,
                *args: str) -> tuple[int, str]:
    """One ``rollguard drill``: its exit code and what it printed."""
    return await finished(await start_drill(run, service, policy, notify_url, *args))


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 120.0,
                ) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"never saw {what}")
        await asyncio.sleep(0.2)


async def pointer(service: str) -> PointerState | None:
    store = PointerStore(async_redis_client(), b"unused")
    try:
        return await store.read(service)
    except UnknownService:
        return None
    finally:
        await store.client.aclose()


async def assert_left_alone(service: str) -> None:
    """The drill service serves its stable release alone, whatever the drill met."""
    state = await pointer(service)
    assert state is not None
    assert (state.active, state.stable, state.candidate) == ("drill-stable", "drill-stable",
                                                            None)


def hop_line(output: str, label: str) -> str:
    """The timeline's line of a hop."""
    return next(line for line in output.splitlines() if line.startswith("  ") and label in line)


async def test_a_drill_passes_on_a_healthy_deployment_then_again_on_a_schedule(
        run: IsolatedRun, service: str, policy: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every hop within its bound, once, then right after with ``--every`` (its events follow
    the first drill's in event time), whose /metrics shows the success; marked as a drill on
    the audit topic and in every message; PagerDuty gets nothing; SIGTERM stops it."""
    metrics = f"127.0.0.1:{free_port()}"
    with worker(run, policy) as process:
        await wait_for_worker_ready(run, process)
        async with notifier(run, accept_all, monkeypatch) as (got, url):
            started = time.monotonic()
            first = await drill(run, service, policy, url)
            took_first = time.monotonic() - started
            child = await start_drill(run, service, policy, url, "--every", "1h",
                                      "--metrics-addr", metrics)

            async def succeeded() -> bool:
                samples = await scrape(f"http://{metrics}/metrics")
                return value(samples, "rollguard_drill_runs_total", result="passed") > 0

            await until(succeeded, "a second drill's success on /metrics")
            samples = await scrape(f"http://{metrics}/metrics")
            child.send_signal(signal.SIGTERM)
            second = await finished(child)
    for code, output in (first, second):
        assert code == 0, output
        assert "drill passed" in output
        for label in HOPS:
            assert hop_line(output, label).split()[0] == "ok", output
    assert "drill 1 of" in first[1] and "drill 2 of" in second[1]
    assert took_first < 30.0, first[1]
    assert value(samples, "rollguard_drill_runs_total", result="passed") == 1
    assert value(samples, "rollguard_drill_last_success_timestamp_seconds") > time.time() - 60
    assert value(samples, "rollguard_drill_hop_seconds", hop="flip") < 5.0
    await assert_left_alone(service)
    audit = [r for r in await read_topic(run.topic("audit")) if r.get("service") == service]
    assert {r["type"] for r in audit} >= {"decision", "outcome"}
    assert all(r.get("drill") is True for r in audit)
    slack = orjson.dumps(got.bodies("slack")).decode()
    assert "[drill] Rollback of drill-01" in slack and "DRILL: a rehearsal" in slack
    assert all(b["episode"]["drill"] for b in got.bodies("webhook"))
    assert got.bodies("pagerduty") == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_a_scheduled_drill_stops_on_a_signal_and_takes_its_canary_away(
        run: IsolatedRun, service: str, policy: str, signum: int) -> None:
    """Mid-drill, SIGINT inherited ignored: it exits 0 and its canary is rolled back."""
    child = await start_drill(run, service, policy, None, "--every", "1h", "--metrics-addr",
                              "", "--decision-wait", "60", ignore_sigint=True)

    async def canary_up() -> bool:
        state = await pointer(service)
        return state is not None and state.candidate == "drill-01"

    await until(canary_up, "the drill's canary")
    child.send_signal(signum)
    code, output = await finished(child)
    assert code == 0, output
    await assert_left_alone(service)


async def test_a_drill_fails_at_the_decision_when_the_worker_is_stopped(
        run: IsolatedRun, service: str, policy: str) -> None:
    """A worker that ran and was stopped: the events are accepted, no decision comes."""
    with worker(run, policy) as process:
        await wait_for_worker_ready(run, process)
    code, output = await drill(run, service, policy, None, "--decision-wait", "4")
    assert code == 1, output
    assert "drill FAILED at rollback decided: no rollback of drill-01" in output
    assert hop_line(output, "events accepted").split()[0] == "ok"
    assert hop_line(output, "rollback decided").split()[0] == "FAIL"
    await assert_left_alone(service)


async def test_a_drill_leaves_a_service_another_drill_holds_alone(
        run: IsolatedRun, service: str, policy: str) -> None:
    """One drill of a service at a time: the second fails at once and touches nothing."""
    client = async_redis_client()
    try:
        assert await DrillRecords(client).claim(service, "another-drill", 60.0)
        code, output = await drill(run, service, policy, None)
        assert code == 1, output
        assert f"another drill of {service} is under way" in output
        assert await pointer(service) is None
        assert (await DrillRecords(client).read(service)).number == 0
    finally:
        await client.aclose()


def refuse_webhook(path: str, n: int) -> int:
    return 503 if path == "webhook" else accept_all(path, n)


async def test_a_drill_fails_at_the_notification_when_the_destination_refuses(
        run: IsolatedRun, service: str, policy: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The webhook answers 503 to everything: the notifier retries, the drill names it."""
    with worker(run, policy) as process:
        await wait_for_worker_ready(run, process)
        async with notifier(run, refuse_webhook, monkeypatch) as (got, url):
            code, output = await drill(run, service, policy, url)
    assert code == 1, output
    assert "drill FAILED at notification delivered: not delivered to webhook" in output
    assert hop_line(output, "reader switched").split()[0] == "ok"
    assert got.refused.get("webhook") and got.bodies("slack")
    await assert_left_alone(service)


@pytest.fixture(name="no_pointer_writes")
def fixture_no_pointer_writes(service: str) -> Iterator[str]:
    """A Redis user with the worker's permissions but SET, the command that writes a
    pointer (inside the actuator's script): its REDIS_URL."""
    name = f"worker-{service}"
    admin = redis.Redis.from_url(redis_url())
    rules = [r for r in writer_rules() if r != "+set"]
    admin.execute_command("ACL", "SETUSER", name, "reset", "on", f">{PASSWORD}", *rules)
    try:
        yield redis_url().replace("redis://", f"redis://{name}:{PASSWORD}@", 1)
    finally:
        admin.execute_command("ACL", "DELUSER", name)
        admin.close()


async def test_a_drill_fails_at_the_flip_when_the_workers_redis_user_may_not_write_it(
        run: IsolatedRun, service: str, policy: str, no_pointer_writes: str) -> None:
    """The worker decides and sends the command; its actuator may not write the pointer."""
    with worker(run, policy, REDIS_URL=no_pointer_writes) as process:
        await wait_for_worker_ready(run, process)
        code, output = await drill(run, service, policy, None)
    assert code == 1, output
    assert "drill FAILED at pointer flipped: no outcome of command" in output
    assert hop_line(output, "command issued").split()[0] == "ok"
    assert PASSWORD not in output
    await assert_left_alone(service)
