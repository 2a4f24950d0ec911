"""The worker's partition loop: one Kafka message in, effects out."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from rollguard.actions.state import PointerState
from rollguard.detectors.decision import Decision, DecisionAction, Verdict
from rollguard.detectors.monitors import Fed
from rollguard.detectors.policy import default_policy
from rollguard.streams.checkpoint import FORWARDED, applied_offset_key, unpack_lanes
from rollguard.streams.partition import Effects, PartitionLoop

T0 = 1_700_000_000.0


def good_block(service: str = "chat", n: int = 3, first: int = 0) -> dict[str, Any]:
    return {"service": service, "release": "r1",
            "event_id": [f"{service}-{first + i}" for i in range(n)],
            "ts": [T0 + first + i for i in range(n)],
            "metrics": {"error": [0] * n, "latency_ms": [120.0] * n}}


def new_loop(table: dict[bytes, bytes] | None = None) -> PartitionLoop[int]:
    return PartitionLoop(default_policy(), b"secret", (table or {}).get, clock=lambda: T0)


def feed(loop: PartitionLoop[int], items: list[Any], key: bytes | None = b"chat",
         offset: int = 0, now: float = 0.0, pointer: PointerState | None = None) -> Effects[int]:
    return loop.on_message(0, offset, key, orjson.dumps(items), pointer, now, offset)


def handle(items: list[Any], key: bytes | None = b"chat") -> tuple[int, list[str]]:
    out = feed(new_loop(), items, key)
    return out.events, [orjson.loads(d)["reason"] for d in out.dead]


@pytest.mark.parametrize(
    ("items", "events", "reasons"),
    [
        ([good_block(), good_block(first=3)], 6, []),
        ([good_block(), {**good_block(first=3), "ts": [T0, T0]}], 3, ["bad_block"]),
        ([{**good_block(), "metrics": {"error": [0, 3, 1]}}], 2, ["metric_out_of_range"]),
        ([{**good_block(), "event_id": ["a", None, ""]}], 1, ["missing_event_id", "bad_event_id"]),
        ([good_block(), good_block("other", first=3)], 3, ["key_mismatch"]),
        ([good_block(), {"event_id": "one", "ts": T0 + 9, "service": "chat", "release": "r1",
                         "metrics": {"error": 1}}], 4, []),
    ],
)
def test_each_bad_event_of_a_message_is_a_dead_letter_and_the_rest_count(
        items: list[Any], events: int, reasons: list[str]) -> None:
    """Blocks and single events mix in one message; only what is bad is set aside."""
    counted, dead = handle(items)
    assert dead == reasons
    assert counted == events


def test_a_block_sent_twice_is_counted_once() -> None:
    """A producer's retry of a whole block is dropped by the dedupe, event by event."""
    loop = new_loop()
    for offset in range(2):
        feed(loop, [good_block()], offset=offset)
    monitor = loop.monitors.get("chat")
    assert monitor is not None and monitor.counts["duplicates"] == 3


def test_an_unkeyed_message_of_blocks_uses_the_blocks_service() -> None:
    """Producers without keys still get their blocks counted for the named service."""
    loop = new_loop()
    out = feed(loop, [good_block("solo")], key=None)
    assert (out.events, out.dead) == (3, [])
    monitor = loop.monitors.get("solo")
    assert monitor is not None and monitor.counts["duplicates"] == 0


def test_a_message_is_acknowledged_only_with_the_checkpoint_that_holds_it() -> None:
    """No acks before a checkpoint; then the services' states, the applied offset last, and
    every message so far acknowledged."""
    loop = new_loop()
    first = feed(loop, [good_block()], offset=0, now=0.0)
    assert (first.writes, first.acks) == ([], [])
    due = feed(loop, [good_block(first=3)], offset=1, now=5.0)
    assert [k for _, k, _ in due.writes] == [b"chat", applied_offset_key(0)]
    assert due.acks == [0, 1]


def test_a_quiet_partition_is_checkpointed_by_the_timer() -> None:
    loop = new_loop()
    feed(loop, [good_block()], offset=0, now=0.0)
    assert loop.on_timer(1.0).acks == []
    assert loop.on_timer(2.5).acks == [0]
    assert loop.on_timer(10.0).writes == []  # nothing new: nothing to write


def test_a_skipped_offset_is_sought_and_the_message_after_it_waits() -> None:
    """Offsets 1..2 never arrived: seek back to 1, leave 3 for later, repeat the seek."""
    loop = new_loop({applied_offset_key(0): b"0"})
    out = feed(loop, [good_block()], offset=3, now=0.0)
    assert (out.seeks, out.events) == ([(0, 1)], 0)
    assert loop.on_timer(1.5).seeks == [(0, 1)]


def test_a_message_skipped_for_a_gap_is_acknowledged_only_once_read_again() -> None:
    """After a restart from a checkpoint at offset 32, Faust delivers 33, drops 34, delivers
    35 and 36 (seen once under load: "offsets skipped on lane 0; reading again from 34").
    The checkpoint due meanwhile acknowledges 33 alone: acknowledging 35 and 36 as well would
    let Faust commit past 34 (it commits over one missing offset) while no checkpoint holds
    it — the committed offsets would say the worker caught up while the regression's last
    events were still to be judged."""
    loop = new_loop({applied_offset_key(0): b"32"})
    assert feed(loop, [good_block()], offset=33, now=0.0).events == 3
    assert feed(loop, [good_block(first=3)], offset=35, now=0.1).seeks == [(0, 34)]
    assert feed(loop, [good_block(first=6)], offset=36, now=0.2).events == 0
    now = loop.marks.interval_s + 0.1
    quiet = loop.on_timer(now)
    assert quiet.writes[-1] == (0, applied_offset_key(0), b"33") and quiet.acks == [33]
    for offset, first in ((34, 9), (35, 3), (36, 6)):  # read again from 34, after the seek
        assert feed(loop, [good_block(first=first)], offset=offset, now=now + 0.1).events == 3
    again = loop.on_timer(now + loop.marks.interval_s + 0.1)
    assert again.writes[-1] == (0, applied_offset_key(0), b"36") and again.acks == [34, 35, 36]


def test_a_redelivered_message_is_not_counted_again() -> None:
    loop = new_loop()
    assert feed(loop, [good_block()], offset=0).events == 3
    assert feed(loop, [good_block(first=3)], offset=0).events == 0


def test_revoking_forgets_live_monitors_and_unacknowledged_messages() -> None:
    loop = new_loop()
    feed(loop, [good_block()], offset=0)
    loop.on_revoked()
    assert "chat" not in loop.monitors
    assert loop.on_timer(100.0).acks == []


def test_a_message_that_breaks_the_core_is_a_dead_letter_and_the_loop_goes_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    loop = new_loop()

    def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(loop.monitors, "feed", broken)
    out = feed(loop, [good_block()], offset=0)
    assert [orjson.loads(d)["reason"] for d in out.dead] == ["processing_error"]
    assert loop.counts["rejected"] == 1


def test_a_decision_is_sent_and_checkpointed_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rollback decision gives its command and audit record, the pointer cache of its
    service is stale, and the checkpoint holding the state comes with it, not later."""
    decision = Decision(ts=T0, service="chat", release="v2", action=DecisionAction.ROLLBACK,
                        verdict=Verdict.SUSTAINED, to="v1", components=[], reason="worse")
    pointer = PointerState("chat", "v1", "v1", 4, {}, candidate="v2", percent=50.0)
    loop = new_loop()
    real = loop.monitors.feed

    def deciding(*args: Any, **kwargs: Any) -> Fed:
        fed = real(*args, **kwargs)
        fed.decisions.append(decision)
        return fed

    monkeypatch.setattr(loop.monitors, "feed", deciding)
    out = feed(loop, [good_block()], offset=0, now=0.0, pointer=pointer)
    [command] = [orjson.loads(c)["command"] for c in out.commands]
    assert (command["op"], command["expected_epoch"]) == ("rollback", 4)
    assert [orjson.loads(a)["command_id"] for a in out.audit] == [command["command_id"]]
    assert out.commanded == ["chat"] and out.acks == [0]
    assert [k for _, k, _ in out.writes] == [b"chat", applied_offset_key(0)]


def owned_by(partition: int, table: dict[bytes, bytes] | None = None) -> PartitionLoop[int]:
    """A loop in which every key belongs to ``partition``."""
    return PartitionLoop(default_policy(), b"secret", (table or {}).get,
                         clock=lambda: T0, owner=lambda key: partition)


@pytest.mark.parametrize(("owner", "forwarded", "events"), [(0, [], 3), (1, [b"chat"], 0)])
def test_a_message_is_judged_on_its_services_partition_and_forwarded_from_any_other(
        owner: int, forwarded: list[bytes], events: int) -> None:
    """The fast path judges a message where it sits; elsewhere it goes to the by-service
    topic unjudged, keyed by its service, and is acknowledged like any other."""
    loop = owned_by(owner)
    out = loop.on_message(0, 0, b"chat", orjson.dumps([good_block()]), None, 0.0, 0)
    assert ([k for k, _ in out.forwards], out.events) == (forwarded, events)
    assert loop.on_timer(5.0).acks == [0]


def test_an_unkeyed_message_is_routed_by_its_first_valid_items_service() -> None:
    """Other services' items in it are dead letters where it is judged (key_mismatch)."""
    value = orjson.dumps([{"bad": 1}, good_block("solo"), good_block("other")])
    key = PartitionLoop.key_of(None, value)
    assert key == b"solo"
    out = owned_by(0).on_message(0, 0, key, value, None, 0.0, 0)
    assert [orjson.loads(d)["reason"] for d in out.dead] == ["missing_event_id",
                                                            "key_mismatch"]


def test_forwarded_messages_feed_the_same_monitor_on_their_own_lane() -> None:
    """Both lanes count into one service; each keeps its offsets, and the stored state
    holds the offset applied through on each, so a re-read after a crash skips both."""
    loop = owned_by(0, {applied_offset_key(0): b"4", applied_offset_key(FORWARDED): b"8"})
    loop.on_message(0, 5, b"chat", orjson.dumps([good_block()]), None, 0.0, 0)
    out = loop.on_forwarded(0, 9, b"chat", orjson.dumps([good_block(first=3)]), None, 0.0, 1)
    assert out.events == 3
    writes = loop.on_timer(5.0).writes
    table = {key: value for _, key, value in writes}
    assert {p for p, _, _ in writes} == {0}
    assert unpack_lanes(table[b"chat"])[:2] == (5, 9)
    assert table[applied_offset_key(FORWARDED)] == b"9"
    again = owned_by(0)
    again._stored = table.get  # a restart from this checkpoint, before the offsets moved
    assert again.on_forwarded(0, 9, b"chat", orjson.dumps([good_block(first=3)]), None,
                              0.0, 1).events == 0


def test_an_undecodable_batch_is_one_dead_letter_naming_its_offsets() -> None:
    loop = new_loop({applied_offset_key(0): b"1"})
    out = loop.on_undecodable(0, 2, 6, "UnsupportedCodecError: snappy", 0.0, 2)
    letter = orjson.loads(out.dead[0])
    assert letter["reason"] == "undecodable"
    assert letter["value"] == {"topic": "events", "partition": 0, "offsets": [2, 6]}
    assert feed(loop, [good_block()], offset=7).events == 3  # no gap: 2..6 are read


def test_a_partition_stalled_short_of_its_end_is_read_again_from_the_next_offset() -> None:
    """Faust dropped the last messages it fetched (after a restart): no later offset reveals
    the gap, so the timer seeks once the partition made no progress for a while."""
    loop = new_loop({applied_offset_key(0): b"4"})
    assert loop.on_timer(0.0, ends={0: 10, 1: None}).seeks == []
    assert loop.on_timer(loop.guard.stall_s + 0.1, ends={0: 10, 1: None}).seeks == [(0, 5)]
    assert loop.on_timer(100.0, ends={0: 5}).seeks == [], "caught up: nothing to seek"


def test_the_first_messages_of_a_partition_dropped_before_any_checkpoint_are_read_again(
) -> None:
    """Nothing applied yet (a new group: nothing committed, so Faust seeks nowhere after a
    rebalance): a first message at offset 3 means 0..2 were dropped; they are sought back,
    and the timer seeks too when the dropped ones were the partition's last."""
    loop = new_loop()
    out = feed(loop, [good_block()], offset=3)
    assert (out.events, out.seeks) == (0, [(0, 0)])
    assert feed(loop, [good_block()], offset=0).events == 3
    quiet = new_loop()
    assert quiet.on_timer(0.0, ends={0: 2}).seeks == []
    assert quiet.on_timer(quiet.guard.stall_s + 0.1, ends={0: 2}).seeks == [(0, 0)]


def test_forwarded_messages_below_the_log_start_are_a_gap_named_by_its_topic() -> None:
    """The by-service topic's partition 1 starts at offset 6 (retention) while the table
    says 2 was applied: the timer's first retry is given the lane's log start and reads on
    from there; the gap counts for the topic the loop was told."""
    table = {applied_offset_key(1 + FORWARDED): b"2"}
    loop: PartitionLoop[int] = PartitionLoop(default_policy(), b"secret", table.get,
                                             clock=lambda: T0, topics=("ev", "fw"))
    assert loop.guard.accepted == {"ev": 0, "fw": 0}, "both listed from the start"
    out = loop.on_forwarded(1, 6, b"chat", orjson.dumps([good_block()]), None, 0.0, 6)
    assert (out.seeks, out.events) == ([(1 + FORWARDED, 3)], 0)
    assert loop.guard.retrying(1.0) == [1 + FORWARDED]
    assert loop.on_timer(1.0, starts={1 + FORWARDED: 6}).seeks == [(1 + FORWARDED, 6)]
    assert loop.guard.accepted == {"ev": 0, "fw": 1}
    again = loop.on_forwarded(1, 6, b"chat", orjson.dumps([good_block()]), None, 1.1, 6)
    assert again.events == 3


def test_messages_read_again_after_a_restart_are_acknowledged_by_the_timer() -> None:
    """Only redeliveries on a partition (the state already holds them): still committed."""
    loop = new_loop({applied_offset_key(0): b"7"})
    assert feed(loop, [good_block()], offset=6, now=0.0).events == 0
    assert loop.on_timer(0.5).acks == []
    assert loop.on_timer(loop.marks.interval_s + 0.1).acks == [6]
