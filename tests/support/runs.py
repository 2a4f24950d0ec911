"""The worker harness of the end-to-end tests and the benchmarks: isolated runs that clean up
after themselves, and waits for a positive signal from a running worker."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.errors import (
    CoordinatorLoadInProgressError,
    CoordinatorNotAvailableError,
    NotCoordinatorError,
)

from rollguard.demo.isolated import WorkerRun
from rollguard.streams.connect import consumer, new_admin_client, partition_counts


class IsolatedRun(WorkerRun):
    """A :class:`WorkerRun` whose topics are deleted when the test or benchmark is done.

    Its workers checkpoint every second (the default is 5 s), so waiting for their committed
    offsets (:func:`wait_processed`) takes about a second after the last message; they
    serve no /metrics unless ``ROLLGUARD_METRICS_ADDR`` is passed.
    """

    def env(self, **extra: str) -> dict[str, str]:
        # No /metrics unless asked for: runs side by side must not contend for one port.
        return super().env(**{"ROLLGUARD_CHECKPOINT_S": "1", "ROLLGUARD_METRICS_ADDR": "",
                              **extra})

    def start_member(self, name: str, **extra: str) -> subprocess.Popen[bytes]:
        """One more worker of the run's consumer group (the same app id), with a data
        folder and a log of its own (``<run>-<name>.log``): several of them share the
        partitions as the workers of one deployment do."""
        folder = f".rollguard/runs/{self.run_id}-{name}"
        return self.start_worker(Path(f"{folder}.log"), ROLLGUARD_DATA_DIR=folder, **extra)

    async def delete_topics(self) -> None:
        """Delete the run's topics and Faust's topics of its app (changelogs): a broker that
        keeps thousands of finished runs' partitions gets slower for every later one."""
        admin = new_admin_client()
        await admin.start()
        try:
            mine = [t for t in await admin.list_topics()
                    if t.startswith((f"{self.run_id}.", f"{self.app_id}-"))]
            if mine:
                await admin.delete_topics(mine)
        finally:
            await admin.close()


# A new broker creates its offsets topic when a group first asks for its coordinator, and
# answers these until it is ready: nothing is committed yet, so the waits below ask again.
COORDINATOR_NOT_READY = (CoordinatorNotAvailableError, CoordinatorLoadInProgressError,
                         NotCoordinatorError)


async def committed_offsets(admin: AIOKafkaAdminClient, group: str,
                            topic: str) -> dict[int, int]:
    """The offsets ``group`` has committed on ``topic``, by partition (none while the
    group's coordinator is not ready)."""
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    except COORDINATOR_NOT_READY:
        return {}
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}


async def committed_events(run: IsolatedRun, role: str = "events") -> int:
    """How many messages of the events topic (or the run's ``role`` topic) the worker's
    group has committed in all."""
    admin = new_admin_client(run.env()["KAFKA_BOOTSTRAP"])
    await admin.start()
    try:
        return sum((await committed_offsets(admin, run.app_id, run.topic(role))).values())
    finally:
        await admin.close()


async def wait_progress(run: IsolatedRun, beyond: int, timeout: float = 90.0,
                        role: str = "events") -> int:
    """Wait until the worker's group has committed more than ``beyond`` messages of the
    events topic (or the ``role`` topic) in all (a sign a worker is up and consuming);
    return how many."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = await committed_events(run, role)
        if done > beyond:
            return done
        await asyncio.sleep(0.2)
    raise TimeoutError(f"worker {run.app_id} committed nothing beyond {beyond} in {timeout}s")


async def wait_processed(run: IsolatedRun, timeout: float = 90.0,
                         roles: tuple[str, ...] = ("events", "by-service", "commands")) -> None:
    """Wait until the worker's group has committed every message so far of the run's
    ``roles`` topics: the monitor checkpointed every event (and sent what it decided, and
    forwarded what another partition judges, before that), the forwarded messages were
    judged, and the actuator carried out every command sent by then."""
    for role in roles:
        topic = run.settings().topic_by_service if role == "by-service" else run.topic(role)
        await _wait_committed(run, topic, timeout)


async def _wait_committed(run: IsolatedRun, topic: str, timeout: float) -> None:
    partitions = (await partition_counts([topic])).get(topic, 0)
    async with consumer(group_id=None) as probe:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        ends = {tp.partition: o for tp, o in (await probe.end_offsets(tps)).items()}
    admin = new_admin_client(run.env()["KAFKA_BOOTSTRAP"])
    await admin.start()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = await committed_offsets(admin, run.app_id, topic)
            if all(done.get(p, 0) >= end for p, end in ends.items()):
                return
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
    raise TimeoutError(f"worker {run.app_id} did not catch up with {topic} in {timeout}s")


async def group_partitions(run: IsolatedRun, topic: str) -> dict[str, set[int]] | None:
    """The partitions of ``topic`` each member of the run's group holds, by member id;
    None unless the group is stable (not rebalancing, and with members)."""
    admin = new_admin_client(run.env()["KAFKA_BOOTSTRAP"])
    await admin.start()
    try:
        [response] = await admin.describe_consumer_groups([run.app_id])
    except COORDINATOR_NOT_READY:
        return None
    finally:
        await admin.close()
    group = response.to_object()["groups"][0]
    if group["state"] != "Stable" or not group["members"]:
        return None
    held = {}
    for member in group["members"]:
        assignment = ConsumerProtocolMemberAssignment.decode(member["member_assignment"])
        held[member["member_id"]] = {p for t, parts in assignment.assignment if t == topic
                                     for p in parts}
    return held


async def wait_members(run: IsolatedRun, members: int, topic: str,
                       timeout: float = 90.0) -> dict[str, set[int]]:
    """Wait until the run's group is stable with ``members`` members that hold every
    partition of ``topic`` between them; return who holds which (see
    :func:`group_partitions`)."""
    partitions = (await partition_counts([topic])).get(topic, 0)
    deadline = time.monotonic() + timeout
    held: dict[str, set[int]] | None = None
    while time.monotonic() < deadline:
        held = await group_partitions(run, topic)
        if (held is not None and len(held) == members
                and set().union(*held.values()) == set(range(partitions))):
            return held
        await asyncio.sleep(0.2)
    raise TimeoutError(f"group {run.app_id} never had {members} members holding {topic}: "
                       f"{held}")
