"""Duplicates: exact ids, remembered for the lateness bound of event time, within bounds."""

from __future__ import annotations

import random
import uuid
import zlib

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollguard.base.errors import StateError
from rollguard.detectors.blocks import Block, validate_block
from rollguard.detectors.codec import MAGIC, decode_state
from rollguard.detectors.dedupe import IdMemory
from rollguard.detectors.events import Event
from rollguard.detectors.monitor import ServiceMonitor
from rollguard.detectors.policy import default_policy

T0 = 1_790_000_000.0
# Two ids with one CRC-32 (found by a search over random "evt-%016x" ids).
COLLIDING = ("evt-2030cfcdb5dd0392", "evt-a6bf2b6f29e82cf4")


def event(event_id: str, ts: float, release: str = "r1") -> Event:
    return Event(event_id, ts, "chat", release, "", {"error": 0.0})


def block_of(ids: list[str], ts: list[float]) -> Block:
    found = validate_block({"service": "chat", "release": "r1", "event_id": ids, "ts": ts,
                            "metrics": {"error": [0.0] * len(ids)}})
    assert found is not None
    return found


def counted(monitor: ServiceMonitor, sent: int) -> int:
    return sent - monitor.counts["duplicates"] - monitor.counts["too_late"]


@pytest.mark.parametrize("as_block", [False, True])
def test_two_different_ids_with_the_same_crc32_both_count(as_block: bool) -> None:
    """Ids are compared as ids: a CRC-32 collision is no duplicate."""
    first, second = COLLIDING
    assert zlib.crc32(first.encode()) == zlib.crc32(second.encode())
    monitor = ServiceMonitor("chat", default_policy())
    if as_block:
        monitor.observe_block(block_of([first], [T0]))
        monitor.observe_block(block_of([second], [T0 + 1]))
    else:
        monitor.observe(event(first, T0))
        monitor.observe(event(second, T0 + 1))
    assert monitor.counts["duplicates"] == 0 and monitor.remembered_ids == 2


@pytest.mark.parametrize("as_block", [False, True])
def test_a_duplicate_600_events_later_within_the_window_is_caught(as_block: bool) -> None:
    """600 other events (more than the 512 ids remembered before) in 60 s: still caught."""
    monitor = ServiceMonitor("chat", default_policy())
    ids = [f"id-{i}" for i in range(601)]
    ts = [T0 + i / 10 for i in range(601)]
    if as_block:
        monitor.observe_block(block_of(ids, ts))
        monitor.observe_block(block_of(["id-0"], [T0]))
    else:
        for i, t in zip(ids, ts, strict=True):
            monitor.observe(event(i, t))
        monitor.observe(event("id-0", T0))
    assert monitor.counts["duplicates"] == 1 and monitor.counts["too_late"] == 0


def test_a_duplicate_older_than_the_window_is_too_late_and_dead_lettered() -> None:
    """Once the newest bucket is more than 300 s past an id's, the id is forgotten, and a
    duplicate with the original's time is too late to count anyway: dead-lettered."""
    monitor = ServiceMonitor("chat", default_policy())
    monitor.observe(event("id-0", T0))
    for i in (1, 2, 3):  # three in a row: the service's time moves (detectors/ahead.py)
        monitor.observe(event(f"id-{i}", T0 + 319 + i))
    assert monitor.remembered_ids == 3  # id-0 is forgotten
    monitor.too_late.clear()
    monitor.observe(event("id-0", T0))
    assert monitor.counts["duplicates"] == 0 and monitor.counts["too_late"] == 1
    assert monitor.too_late == [0]


@settings(max_examples=40, deadline=None)
@given(gaps=st.lists(st.floats(0, 30), min_size=1, max_size=80),
       resends=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)), max_size=40),
       restore_at=st.sets(st.integers(0, 120), max_size=4))
def test_an_event_sent_again_is_never_counted_twice(gaps: list[float],
                                                     resends: list[tuple[int, int]],
                                                     restore_at: set[int]) -> None:
    """Any event sent again, any time later (same id and time): a duplicate or too late,
    never counted a second time; state round trips in between change nothing."""
    originals, t = [], T0
    for i, gap in enumerate(gaps):
        t += gap
        originals.append(event(f"id-{i}", t))
    stream = list(originals)
    for which, where in resends:
        original = which % len(originals)
        stream.insert(original + 1 + where % (len(stream) - original), originals[original])
    monitor = ServiceMonitor("chat", default_policy())
    for n, e in enumerate(stream):
        if n in restore_at:
            monitor = ServiceMonitor.from_bytes(monitor.to_bytes(), default_policy())
        monitor.observe(e)
    assert counted(monitor, len(stream)) == len(originals)


def test_remembered_ids_never_exceed_the_cap_and_evictions_are_counted() -> None:
    """A flood: 2,000 events in 20 s with a cap of 150 ids; the oldest are forgotten first."""
    monitor = ServiceMonitor("chat", default_policy(), dedupe_cap=150)
    for i in range(2_000):
        monitor.observe(event(f"id-{i}", T0 + i / 100))
        assert monitor.remembered_ids <= 150
    assert monitor.counts["dedupe_evicted"] == 2_000 - 150
    monitor.observe(event("id-1999", T0 + 19.99))
    monitor.observe(event("id-0", T0))  # forgotten early: counted again (the cost of a cap)
    assert monitor.counts["duplicates"] == 1


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(st.tuples(st.integers(0, 40), st.integers(0, 12), st.integers(1, 30)),
                      min_size=1, max_size=30))
def test_id_memory_stays_within_both_bounds_and_forgets_oldest_first(
        steps: list[tuple[int, int, int]]) -> None:
    """Whatever comes, ids and characters stay within bounds, the count of evicted ids is
    exact, and what is remembered is the newest ids of the window."""
    memory = IdMemory(bucket_seconds=10.0, window_seconds=300.0, cap=40, chars=300)
    arrived: list[tuple[int, str]] = []
    bucket, serial = 0, 0
    for advance, count, length in steps:
        bucket += advance
        ids = [f"{serial + k:0{length}d}" for k in range(count)]
        serial += count
        before = set(memory.ids)
        evicted = memory.remember(ids, bucket)
        kept = [i for b, i in arrived if i in before and (bucket - b) * 10.0 <= 300.0]
        arrived += [(bucket, i) for i in ids]
        assert len(memory) <= 40 and memory.chars <= 300
        assert memory.chars == sum(map(len, memory.ids))
        in_window = [i for b, i in arrived if (bucket - b) * 10.0 <= 300.0]
        assert memory.ids == set(in_window[len(in_window) - len(memory):])
        assert evicted == len(kept) + len(ids) - len(memory)


def test_blocks_evict_exactly_as_their_events_one_by_one() -> None:
    """With a small cap, blocks leave the same state as their events observed one by one."""
    ids = [f"id-{i}" for i in range(300)]
    ts = [T0 + i / 5 for i in range(300)]
    one = ServiceMonitor("chat", default_policy(), dedupe_cap=25)
    for i, t in zip(ids, ts, strict=True):
        one.observe(event(i, t))
    blocks = ServiceMonitor("chat", default_policy(), dedupe_cap=25)
    for start in range(0, 300, 70):
        blocks.observe_block(block_of(ids[start:start + 70], ts[start:start + 70]))
    assert blocks.to_bytes() == one.to_bytes()
    assert blocks.counts["dedupe_evicted"] == 300 - 25


def _as_version_1(state: bytes) -> bytes:
    size = int.from_bytes(state[5:9], "big")
    plain = orjson.loads(zlib.decompress(state[9:9 + size]))
    del plain["dedupe"]
    body = zlib.compress(orjson.dumps(plain), 1)
    crcs = zlib.crc32(b"id-0").to_bytes(4, "little")
    return MAGIC + b"\x01" + len(body).to_bytes(4, "big") + body + crcs


def test_a_version_1_state_is_read_with_an_empty_dedupe_memory() -> None:
    """Its CRC-32s cannot be turned back into ids: the rest of the state is kept."""
    monitor = ServiceMonitor("chat", default_policy())
    monitor.observe(event("id-0", T0))
    restored = ServiceMonitor.from_bytes(_as_version_1(monitor.to_bytes()), default_policy())
    assert restored.remembered_ids == 0 and restored.stable == "r1"
    current = decode_state(monitor.to_bytes())
    assert decode_state(restored.to_bytes()) == {**current, "dedupe": []}


@pytest.mark.parametrize("dedupe", [[[1, [2]]], [["1", ["a"]]], [[1, "a"]], [1]])
def test_a_corrupt_dedupe_memory_is_refused_clearly(dedupe: object) -> None:
    state = ServiceMonitor("chat", default_policy()).to_bytes()
    plain = orjson.loads(zlib.decompress(state[9:]))
    plain["dedupe"] = dedupe
    body = zlib.compress(orjson.dumps(plain), 1)
    with pytest.raises(StateError, match="corrupt"):
        ServiceMonitor.from_bytes(MAGIC + b"\x02" + len(body).to_bytes(4, "big") + body,
                                  default_policy())


def test_a_flood_of_uuids_keeps_the_state_one_kafka_message() -> None:
    """40,000 random UUIDs in 100 s: the characters bound keeps the state under 900 kB."""
    rng = random.Random(3)
    monitor = ServiceMonitor("chat", default_policy())
    for i in range(40_000):
        monitor.observe(event(str(uuid.UUID(int=rng.getrandbits(128))), T0 + i / 400))
    assert monitor.counts["dedupe_evicted"] > 0
    assert len(monitor.to_bytes()) < 900_000
