"""A guarded rollout whose service's events two workers of one group share, end to end on the
real broker and Redis: each chunk of events goes to a partition in turn, so one worker judges
it and the other forwards it to the judge; the judge is SIGKILLed once the first step has
moved and the other takes the service over from its checkpoint. Each step moves once."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest

from rollguard.actions.connect import async_redis_client
from rollguard.actions.pointer import PointerStore
from rollguard.actions.rollout import share_of_release
from rollguard.demo.run import prepare_service
from rollguard.demo.scenario import RELEASES
from rollguard.streams.app import owner_of
from rollguard.streams.connect import prepare_topics, producer
from tests.integration.test_rollout_e2e import (
    HEALTHY,
    RATE,
    WARMUP_S,
    Service,
    cli,
    rollout_policy,
)
from tests.support.e2e import QUICK_TAKEOVER, T0, fixture_run, new_service, read_topic, stop
from tests.support.runs import wait_members, wait_processed

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("servers")]
__all__ = ["fixture_run"]


class Spread(Service):
    """The simulated service, each chunk of its events on the next partition of the topic
    (keyed by the service all the same: only one partition's worker judges them)."""

    chunks = 0

    async def serve(self, seconds: float, share: float) -> None:
        events: list[dict[str, Any]] = []
        for _ in range(int(seconds * RATE)):
            release = "v2" if self.rng.random() * 100 < share else "v1"
            events.append({"event_id": f"{self.name}-{self.serial}", "ts": T0 + self.t,
                           "service": self.name, "release": release,
                           "metrics": self.scenario.metrics(RELEASES[release], self.t,
                                                            self.rng)})
            self.serial += 1
            self.t += 1 / RATE
        partition, self.chunks = self.chunks % self.run.partitions, self.chunks + 1
        async with producer(linger_ms=5, max_request_size=2_000_000) as out:
            for i in range(0, len(events), 200):
                await out.send(self.run.topic("events"), orjson.dumps(events[i:i + 200]),
                               key=self.name.encode(), partition=partition)
            await out.flush()
        await wait_processed(self.run)


def kill(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(10)


async def test_two_workers_sharing_a_services_events_move_each_step_once(
        run: Any, tmp_path: Path) -> None:
    name = new_service()
    await prepare_topics(run.settings())
    store = PointerStore(async_redis_client(), run.secret.encode())
    await prepare_service(store, name, run.secret.encode())
    policy = rollout_policy(tmp_path)
    first = run.start_member("a", ROLLGUARD_POLICY=policy, **QUICK_TAKEOVER)
    workers = [first]
    try:
        [member_a] = await wait_members(run, 1, run.topic("events"))
        workers.append(run.start_member("b", ROLLGUARD_POLICY=policy, **QUICK_TAKEOVER))
        held = await wait_members(run, 2, run.topic("events"))
        owner = owner_of(run.partitions)(name.encode())
        judge = first if owner in held[member_a] else workers[1]
        service = Spread(run, store, name, HEALTHY)
        await service.serve(WARMUP_S, 0.0)
        cli(run, "rollout", "start", name, "v2", "--by", "ann", "--policy", policy)
        await service.follow(lambda s: share_of_release(s, "v2") == 60.0, chunks=12)
        kill(judge)
        await wait_members(run, 1, run.topic("events"))
        state = await service.follow(lambda s: s.stable == "v2", chunks=20)
        audit = await read_topic(run.topic("audit"))
        history = await store.history(name)
    finally:
        for worker in workers:
            stop(worker)
        await store.client.aclose()
    assert service.chunks > 2 * run.partitions  # both partitions carried the service's events
    assert (state.active, state.stable, state.candidate, state.rollout) == (
        "v2", "v2", None, None)
    applied = [(h["op"], h["command"].get("percent")) for h in history
               if h["outcome"] == "applied" and h["op"] != "promote"]
    assert applied == [("rollout_start", 20.0), ("ramp", 60.0), ("ramp", 100.0),
                       ("mark_stable", None)]
    refused = {(h["outcome"], h.get("code")) for h in history
               if h["op"] in ("ramp", "mark_stable") and h["outcome"] != "applied"}
    assert refused <= {("refused", "replayed"), ("conflict", "epoch_moved"),
                       ("already_applied", "duplicate")}, refused
    told = [(a["action"], a["percent"]) for a in audit
            if a.get("type") == "rollout" and a["action"] in ("advance", "stable")]
    # the survivor went on from the judge's checkpoint: nothing announced twice
    assert told == [("advance", 60.0), ("advance", 100.0), ("stable", 100.0)], told
