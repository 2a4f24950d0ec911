"""`rollguard notify` on the real broker and Redis, posting to a local receiver that fails on
purpose: records made by the real decision and actuator code go on the run's alerts and audit
topics, and each destination gets one thread per episode despite the failures."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Callable, Iterator

import aiohttp
import orjson
import pytest

from rollguard.actions.actuator import Actuator
from rollguard.actions.approvals import PendingCommands, approval
from rollguard.actions.commands import Command
from rollguard.actions.keys import operators_key
from rollguard.actions.operators import OperatorRegistry
from rollguard.actions.respond import respond
from rollguard.demo.receiver import Receiver, receiving
from rollguard.detectors.decision import Decision, DecisionAction, Verdict
from rollguard.notify.service import run_notifier
from rollguard.notify.settings import NotifySettings
from rollguard.streams.connect import producer
from rollguard.streams.messages import decision_messages
from tests.support.e2e import ROUTING_KEY, WEBHOOK_KEY, new_service, notify_settings, setup_service
from tests.support.runs import IsolatedRun

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("servers")]


def refuse_first_and_third(path: str, n: int) -> int:
    """A receiver that refuses the 1st and 3rd request on each path with a 503."""
    if n in (1, 3):
        return 503
    return 202 if path == "pagerduty" else 200


@pytest.fixture(name="receiver")
def fixture_receiver() -> Iterator[tuple[Receiver, str]]:
    with receiving(Receiver(refuse_first_and_third)) as served:
        yield served


@pytest.fixture(name="run")
async def fixture_run() -> AsyncIterator[IsolatedRun]:
    run = IsolatedRun.new("e2e-notify", partitions=1)
    yield run
    await run.delete_topics()


async def send(run: IsolatedRun, alerts: list[bytes], audit: list[bytes], key: str) -> None:
    async with producer() as out:
        for value in alerts:
            await out.send_and_wait(run.topic("alerts"), value, key=key.encode())
        for value in audit:
            await out.send_and_wait(run.topic("audit"), value, key=key.encode())


async def wait_until(done: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the receiver never got {what}")
        await asyncio.sleep(0.1)


def decision(service: str, at: float, action: DecisionAction, verdict: Verdict,
             approval_needed: bool = False) -> Decision:
    return Decision(ts=at, service=service, release="v2", action=action, verdict=verdict,
                    to="v1", components=[], requires_approval=approval_needed,
                    reason="hallucination of v2 is 0.08 against 0.02 on v1 (tolerance +2 pp).",
                    evidence={"metric": "hallucination", "rule": "hallucination"})


async def test_notify_posts_one_thread_per_episode_to_every_destination_despite_failures(
        run: IsolatedRun, receiver: tuple[Receiver, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    got, base = receiver
    settings = notify_settings(run, base, monkeypatch)
    paged, blip = new_service(), new_service()
    store = await setup_service(run, paged, canary_percent=50)
    secret = run.secret.encode()
    stop = asyncio.Event()
    notifier = asyncio.create_task(run_notifier(settings, stop, from_beginning=True))
    try:
        # A blip told three times (minutes apart): one message.
        for minute in range(3):
            alerts, audit, _ = decision_messages(
                decision(blip, 1000.0 + 60 * minute, DecisionAction.ALERT, Verdict.TRANSIENT),
                None, at=1000.0 + 60 * minute)
            await send(run, alerts, audit, blip)
        # A rollback that waits for a person, then approved: the actuator's real records.
        now = time.time()
        rollback = decision(paged, now, DecisionAction.ROLLBACK, Verdict.SUSTAINED, True)
        command = respond(rollback, await store.read(paged), now, secret)
        assert isinstance(command, Command)
        alerts, audit, commands = decision_messages(rollback, command, at=now)
        await send(run, alerts, audit, paged)
        actuator = Actuator(store, PendingCommands(store.client), secret)
        alice = await OperatorRegistry(store.client).add(f"alice-{paged}", secret)
        for message in (commands[0], approval(paged, command.command_id, alice.name,
                                              alice.key, now)):
            out = await actuator.handle(message)
            await send(run, out.alerts, out.audit, paged)
        await store.client.hdel(operators_key(), alice.name)

        await wait_until(lambda: any(e["event_action"] == "resolve"
                                     for e in got.bodies("pagerduty")), "a PagerDuty resolve")
        await wait_until(lambda: "Rolled back" in orjson.dumps(got.bodies("slack")).decode(),
                         "the flip on Slack")
        scraped = await scrape(settings)
    finally:
        stop.set()
        stats = await asyncio.wait_for(notifier, 30)

    slack = [orjson.dumps(b).decode() for b in got.bodies("slack")]
    about_paged = [s for s in slack if f"{paged} · release v2" in s]
    assert 1 <= len(about_paged) <= 2  # one thread: the request (+ the flip, if not batched)
    assert f"`rollguard approve {paged} {command.command_id} --by NAME`" in about_paged[0]
    assert "hallucination of v2 is 0.08 against 0.02" in about_paged[0]
    assert sum(f"{blip} · release v2" in s for s in slack) == 1

    events = [e for e in got.bodies("pagerduty") if paged in e["dedup_key"]]
    assert {e["dedup_key"] for e in events} == {f"rollguard/{paged}/v2/{now:.0f}"}
    assert [e["event_action"] for e in events] == ["trigger", "resolve"]
    assert events[0]["routing_key"] == ROUTING_KEY and events[0]["payload"]["summary"]
    assert not any(blip in e["dedup_key"] for e in got.bodies("pagerduty"))

    for headers, body in got.got["webhook"]:
        expected = hmac.new(WEBHOOK_KEY, body, hashlib.sha256).hexdigest()
        assert headers["X-Rollguard-Signature"] == f"sha256={expected}"
    assert {b["episode"]["service"] for b in got.bodies("webhook")} == {paged, blip}

    assert all(got.refused.get(p) for p in ("slack", "webhook", "pagerduty"))
    assert all(stats[p].failed >= 1 and stats[p].sent >= 2 for p in stats)
    for destination in ("slack", "webhook", "pagerduty"):
        label = f'{{destination="{destination}"}}'
        assert scraped[f"rollguard_notify_deliveries_total{label}"] >= 2
        # each receiver refused its first request with a 503: failed, then retried
        assert scraped[f"rollguard_notify_failures_total{label}"] >= 1
        assert scraped[f"rollguard_notify_retries_total{label}"] >= 1


async def scrape(settings: NotifySettings) -> dict[str, float]:
    """The notifier's /metrics, as sample name with labels -> value."""
    assert settings.metrics_addr is not None
    host, port = settings.metrics_addr
    async with aiohttp.ClientSession() as session, \
            session.get(f"http://{host}:{port}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    return {line.rpartition(" ")[0]: float(line.rpartition(" ")[2])
            for line in text.splitlines() if line and not line.startswith("#")}
