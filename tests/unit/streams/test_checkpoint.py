"""Checkpoints of live state: every event counted exactly once, whatever fails when."""

from __future__ import annotations

import random

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollguard.detectors.policy import default_policy
from rollguard.streams.checkpoint import Checkpoints, applied_offset_key, pack, unpack
from rollguard.streams.partition import PartitionLoop

SERVICES = ("chat", "search", "mail")
T0 = 1_790_000_000.0
WALL = T0 + 10**6  # the worker's clock: after every event here, so none is in the future


def messages(seed: int, count: int = 40) -> list[tuple[bytes, bytes]]:
    """Keyed batches of events, all on one partition; offsets are list positions."""
    rng = random.Random(seed)
    out = []
    clock = {s: 1_790_000_000.0 for s in SERVICES}
    for i in range(count):
        service = rng.choice(SERVICES)
        batch = []
        for j in range(rng.randint(1, 30)):
            clock[service] += rng.uniform(0.1, 3.0)
            batch.append({"event_id": f"{service}-{i}-{j}", "ts": clock[service],
                          "service": service, "release": "v1" if i < count // 2 else "v2",
                          "metrics": {"error": int(rng.random() < 0.05),
                                      "latency_ms": rng.uniform(200, 900)}})
        out.append((service.encode(), orjson.dumps(batch)))
    return out


def run(log: list[tuple[bytes, bytes]], checkpoint_after: set[int], crash: tuple[int, int] | None
        ) -> dict[str, bytes]:
    """Feed ``log`` to the worker's :class:`PartitionLoop`, checkpointing (from its timer)
    after the given offsets and carrying out its table writes and acks as the agent does.

    ``crash = (offset, k)``: the process dies during the checkpoint after ``offset``, when
    only the first ``k`` of its table writes have landed; a new loop then restores from the
    table and the partition is read again from its start (the gap guard and the stored
    offsets skip what the table holds). Returns each service's final state.
    """
    table: dict[bytes, bytes] = {}
    while True:
        loop: PartitionLoop[int] = PartitionLoop(default_policy(), b"secret", table.get,
                                                 interval_s=5.0, clock=lambda: WALL)
        clock = 0.0
        for offset, (key, value) in enumerate(log):
            done = [loop.on_message(0, offset, key, value, None, clock, offset)]
            if offset in checkpoint_after or offset == len(log) - 1:
                clock += 10.0
                done.append(loop.on_timer(clock))
            # Every effect is carried out, the message's and then the timer's, as the agents
            # do (dropping one of them loses its checkpoint's writes).
            writes = [(k, v) for effects in done for _, k, v in effects.writes]
            if crash is not None and crash[0] == offset and writes:
                table.update(writes[:crash[1]])
                crash = None
                break  # the process died here
            table.update(writes)
            assert_held(table, [ack for effects in done for ack in effects.acks])
        else:
            # A service with nothing left to read after the restart is as the table holds it.
            return {s: loop.state_of(s) or unpack(table[s.encode()])[1] for s in SERVICES}


def assert_held(table: dict[bytes, bytes], acks: list[int]) -> None:
    """Acknowledged messages are held by the table: its applied offset covers them."""
    if acks:
        assert max(acks) <= int(table[applied_offset_key(0)])


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), data=st.data())
def test_a_crash_anywhere_in_a_checkpoint_counts_every_event_once(seed: int, data) -> None:
    """After a crash between any two table writes of any checkpoint, the restarted worker
    ends with exactly the state of a worker that never crashed."""
    log = messages(seed)
    points = set(data.draw(st.lists(st.integers(0, len(log) - 1), max_size=8)))
    crash_at = data.draw(st.sampled_from(sorted(points | {len(log) - 1})))
    landed = data.draw(st.integers(0, 2 * (len(SERVICES) + 1)))
    assert run(log, points, (crash_at, landed)) == run(log, points, None)


def test_without_the_stored_offsets_a_replay_would_count_events_twice() -> None:
    """The per-service offsets matter: a state stored ahead of its partition's offset,
    read again without them, differs from the uncrashed state (the test above could fail)."""
    log = messages(3)
    table: dict[bytes, bytes] = {}
    loop: PartitionLoop[int] = PartitionLoop(default_policy(), b"secret", table.get)
    for offset, (key, value) in enumerate(log):
        loop.on_message(0, offset, key, value, None, 0.0, offset)
    ahead = {s.encode(): loop.state_of(s) or b"" for s in SERVICES}  # bare states: no offsets
    replayed: PartitionLoop[int] = PartitionLoop(default_policy(), b"secret", ahead.get)
    for offset, (key, value) in enumerate(log):
        replayed.on_message(0, offset, key, value, None, 0.0, offset)
    assert any(replayed.state_of(s) != loop.state_of(s) for s in SERVICES)


@pytest.mark.parametrize(("noted_at", "now", "due"), [
    (10.0, 10.0, False), (10.0, 11.9, False), (10.0, 12.0, True), (10.0, 50.0, True),
])
def test_a_partition_is_due_once_the_interval_has_passed(noted_at: float, now: float,
                                                         due: bool) -> None:
    marks = Checkpoints(interval_s=2.0)
    marks.note(1, "chat", 5, noted_at)
    assert marks.due(1, now) is due


def test_a_checkpoint_writes_changed_services_then_the_offset_and_cleans_the_partition(
) -> None:
    marks = Checkpoints(interval_s=2.0)
    marks.note(0, "chat", 4, 0.0)
    marks.note(0, None, 5, 0.0)  # a message of invalid events: offset only
    marks.note(0, "mail", 6, 0.0)
    marks.note(1, "search", 9, 0.0)
    writes = marks.writes(0, 3.0, lambda s: {"chat": b"C", "mail": None}[s])
    assert writes == [(b"chat", pack(4, b"C")), (applied_offset_key(0), b"6")]
    assert marks.writes(0, 4.0, lambda s: b"") == [(applied_offset_key(0), b"6")]
    assert not marks.due(0, 4.5) and marks.applied(1) == 9


def test_forget_drops_all_uncheckpointed_progress() -> None:
    marks = Checkpoints()
    marks.note(0, "chat", 4, 0.0)
    marks.forget()
    assert marks.applied(0) is None


@given(st.integers(-(2**63), 2**63 - 1), st.binary(max_size=40))
def test_table_values_carry_their_offset(offset: int, state: bytes) -> None:
    assert unpack(pack(offset, state)) == (offset, state)


def test_a_bare_state_has_no_offset() -> None:
    assert unpack(b"RGSM\x01rest") == (None, b"RGSM\x01rest")
