"""Another Kafka client than ours: kcat (librdkafka) produces with every compression codec
and its own CRC32 partitioner, some messages without a key, to an events topic created
beforehand with more partitions than the worker's setting. The worker adopts the topic,
judges each service on one partition (forwarding what kcat put elsewhere) and decides
exactly what `rollguard replay` decides over the same messages."""

from __future__ import annotations

import subprocess
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from localservers.packages import kcat_binary
from rollguard.analysis.replay import Replay
from rollguard.detectors.policy import default_policy
from rollguard.streams.app import owner_of
from rollguard.streams.connect import ensure_topics
from tests.support.e2e import (
    REGRESSION,
    applied_rollbacks,
    read_topic,
    scenario_events,
    setup_service,
    start,
    stop,
)
from tests.support.runs import IsolatedRun, wait_processed

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("servers")]

PARTITIONS = 5  # the topic's, created beforehand; the worker is told 2
CODECS = ("gzip", "snappy", "lz4", "zstd")
BATCH = 200  # events per message


@pytest.fixture(name="run")
async def fixture_run() -> AsyncIterator[IsolatedRun]:
    run = IsolatedRun.new("xclient", partitions=2)
    yield run
    await run.delete_topics()


def named(run: IsolatedRun, label: str, wanted: Any) -> str:
    """A service name whose partitions (kcat's CRC32, Kafka's murmur2 owner) fit ``wanted``."""
    owner = owner_of(PARTITIONS)
    for i in range(1000):
        name = f"xc-{label}-{run.run_id}-{i}"
        if wanted(zlib.crc32(name.encode()) % PARTITIONS, owner(name.encode())):
            return name
    raise AssertionError("no such name")


def messages(service: str) -> list[bytes]:
    events = scenario_events(service, REGRESSION)
    return [orjson.dumps(events[i:i + BATCH]) for i in range(0, len(events), BATCH)]


def kcat(run: IsolatedRun, tmp: Path, codec: str, lines: list[bytes], keyed: bool,
         partition: int | None = None) -> None:
    """Produce ``lines`` (``key\\tvalue`` when ``keyed``) with kcat's defaults otherwise."""
    if not lines:
        return
    source = tmp / f"{codec}-{keyed}.txt"
    source.write_bytes(b"\n".join(lines) + b"\n")
    argv = [kcat_binary(), "-P", "-b", run.env()["KAFKA_BOOTSTRAP"], "-t", run.topic("events"),
            "-z", codec, "-l", str(source)]
    argv += ["-K", "\t"] if keyed else []
    argv += ["-p", str(partition)] if partition is not None else []
    subprocess.run(argv, check=True, timeout=60)


async def test_kcat_compressed_crc32_and_unkeyed_messages_are_judged_as_replay_judges(
        run: IsolatedRun, tmp_path: Path) -> None:
    """Three regressed services: one whose kcat partition is its own (judged at once), one
    whose is not (forwarded), one sent without a key to a partition that is not its own
    (routed by its events' service). Each is rolled back exactly once, as replay decides."""
    hopped = named(run, "hop", lambda crc, owner: crc != owner)
    direct = named(run, "direct", lambda crc, owner: crc == owner)
    unkeyed = named(run, "nokey", lambda crc, owner: True)
    elsewhere = (owner_of(PARTITIONS)(unkeyed.encode()) + 1) % PARTITIONS
    settings = run.settings()
    await ensure_topics({settings.topic_events: PARTITIONS})
    stores = {s: await setup_service(run, s, canary_percent=50) for s in (hopped, direct, unkeyed)}
    by_service = {s: messages(s) for s in stores}
    chunks = len(by_service[hopped]) // len(CODECS) + 1
    worker = start(run)
    try:
        for n, codec in enumerate(CODECS):  # consecutive stretches of time, one codec each
            part = slice(n * chunks, (n + 1) * chunks)
            kcat(run, tmp_path, codec, [s.encode() + b"\t" + m for s in (hopped, direct)
                                        for m in by_service[s][part]], keyed=True)
            kcat(run, tmp_path, codec, by_service[unkeyed][part], keyed=False,
                 partition=elsewhere)
        await wait_processed(run, timeout=120)
    finally:
        stop(worker)
    # Rollback decisions, those that act. (The worker also alerts "inconclusive" early on:
    # it knows the canary from the pointer, which replay does not; issue 11, item 13.)
    replay = Replay(default_policy())
    for service in stores:
        replay.feed_lines(by_service[service])
    expected = sorted((d.service, d.release, d.verdict, d.to, d.ts) for d in replay.decisions
                      if d.action == "rollback")
    audit = await read_topic(run.topic("audit"))
    decided = sorted((a["service"], a["release"], a["verdict"], a["to"], a["ts"]) for a in audit
                     if a.get("type") == "decision" and a["action"] == "rollback")
    assert decided == expected
    assert {d[0] for d in expected} == set(stores)
    for service, store in stores.items():
        assert len(applied_rollbacks(await store.history(service, count=100))) == 1, service
        await store.client.aclose()
    assert not await read_topic(run.topic("dead"), idle_s=0.5)
