"""A release rolled back and promoted again is judged afresh: a new episode of the pointer,
its own idempotency key, and a second regression rolled back again."""

from __future__ import annotations

import dataclasses
from functools import cache

import orjson

from rollguard.actions.state import PointerState
from rollguard.demo.scenario import Scenario, canary_events
from rollguard.detectors.monitor import ServiceMonitor
from rollguard.detectors.policy import default_policy
from rollguard.streams.partition import PartitionLoop

SERVICE = "rereleased"
REGRESSION = Scenario(rate=5.0, blip_s=0.0, duration=1200.0)
T0 = 1_763_856_000.0
FIRST = PointerState(SERVICE, "v1", "v1", 3, {}, candidate="v2", percent=50.0,
                     watched_since=3)
ROLLED_BACK = PointerState(SERVICE, "v1", "v1", 4, {}, watched_since=4)
PROMOTED_AGAIN = dataclasses.replace(FIRST, epoch=5, watched_since=5)


@cache
def regression(round_: int) -> tuple[bytes, ...]:
    """The regression's messages, the second round later in event time and with new ids."""
    events = canary_events(SERVICE, REGRESSION, seed=7 + round_,
                           start_ts=T0 + round_ * REGRESSION.duration)
    for event in events:
        event["event_id"] = f"{event['event_id']}-round-{round_}"
    return tuple(orjson.dumps(events[i:i + 100]) for i in range(0, len(events), 100))


def rollback_keys(pointers: list[PointerState]) -> list[str]:
    """Feed the regression once per pointer (in order); the idempotency keys of the
    rollback commands issued."""
    table: dict[bytes, bytes] = {}
    loop: PartitionLoop[int] = PartitionLoop(default_policy(), b"s", table.get,
                                             clock=lambda: T0 + 10**5)
    keys: list[str] = []
    offset = 0
    for round_, pointer in enumerate(pointers):
        for value in regression(round_):
            out = loop.on_message(0, offset, SERVICE.encode(), value, pointer, 0.0, offset)
            keys += [orjson.loads(c)["command"]["idempotency_key"] for c in out.commands]
            table.update((k, v) for _, k, v in out.writes)
            offset += 1
        if pointer is FIRST and len(pointers) > round_ + 1:
            # The rollback applied: the pointer no longer watches v2 (seen by one message).
            loop.on_message(0, offset, SERVICE.encode(), b"[]", ROLLED_BACK, 0.0, offset)
            offset += 1
    return keys


def test_a_release_promoted_again_is_rolled_back_again_under_a_new_key() -> None:
    keys = rollback_keys([FIRST, PROMOTED_AGAIN])
    assert keys == [f"{SERVICE}:v2@3:rollback:*", f"{SERVICE}:v2@5:rollback:*"]


def test_the_same_episode_is_never_rolled_back_twice() -> None:
    """A second regression while the pointer still shows the first promotion: no command."""
    assert rollback_keys([FIRST, FIRST]) == [f"{SERVICE}:v2@3:rollback:*"]


def test_a_new_episode_seen_without_the_rollback_in_between_is_judged_afresh() -> None:
    """The monitor may never see the pointer without v2 (no message in that second): the
    episode number alone tells the promotions apart."""
    table: dict[bytes, bytes] = {}
    loop: PartitionLoop[int] = PartitionLoop(default_policy(), b"s", table.get)
    offset = 0
    keys: list[str] = []
    for round_, pointer in enumerate([FIRST, PROMOTED_AGAIN]):
        for value in regression(round_):
            out = loop.on_message(0, offset, SERVICE.encode(), value, pointer, 0.0, offset)
            keys += [orjson.loads(c)["command"]["idempotency_key"] for c in out.commands]
            offset += 1
    assert keys == [f"{SERVICE}:v2@3:rollback:*", f"{SERVICE}:v2@5:rollback:*"]


def test_finished_episodes_survive_a_round_trip_of_the_state() -> None:
    monitor = ServiceMonitor(SERVICE, default_policy())
    monitor._finished = [("v2", 3), ("v0", None)]
    restored = ServiceMonitor.from_bytes(monitor.to_bytes(), default_policy())
    assert restored._finished == [("v2", 3), ("v0", None)]
    restored.set_roles("v1", "v2", 3)
    assert restored.candidate is not None and restored.candidate.finished
    restored.set_roles("v1", "v2", 5)
    assert restored.candidate is not None and not restored.candidate.finished
