"""No message stops other services' judgement: whatever a message's key or value, the
failure stays with that message, and a regression between such messages is rolled back
exactly once, as without them."""

from __future__ import annotations

import random
from functools import cache

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollguard.actions.state import PointerState
from rollguard.demo.scenario import Scenario, canary_events
from rollguard.detectors.policy import default_policy
from rollguard.streams.partition import PartitionLoop

SERVICE = "regressing"
REGRESSION = Scenario(rate=5.0, blip_s=0.0, duration=1200.0)
POINTER = PointerState(SERVICE, "v1", "v1", 3, {}, candidate="v2", percent=50.0)
Message = tuple[bytes | None, bytes | None]
WALL = 2_000_000_000.0  # the worker's clock: after every event here, so none is in the future


@cache
def regression_messages() -> tuple[Message, ...]:
    events = canary_events(SERVICE, REGRESSION)
    return tuple((SERVICE.encode(), orjson.dumps(events[i:i + 100]))
                 for i in range(0, len(events), 100))


def judge(messages: list[Message]) -> tuple[list[tuple[str, str, float]], list[str]]:
    """Run ``messages`` through one partition loop, its checkpoints kept in a table; the
    regressing service's rollback decisions and the reasons of every dead letter."""
    table: dict[bytes, bytes] = {}
    loop: PartitionLoop[int] = PartitionLoop(default_policy(), b"secret", table.get,
                                             clock=lambda: WALL)
    rollbacks: list[tuple[str, str, float]] = []
    reasons: list[str] = []
    for offset, (key, value) in enumerate(messages):
        pointer = POINTER if key == SERVICE.encode() else None
        out = loop.on_message(0, offset, key, value, pointer, float(offset), offset)
        rollbacks += [(d.service, str(d.verdict), d.ts) for d in out.decisions
                      if d.action == "rollback"]
        reasons += [orjson.loads(d)["reason"] for d in out.dead]
        table.update((k, v) for _, k, v in out.writes)
    return rollbacks, reasons


@cache
def clean_rollbacks() -> list[tuple[str, str, float]]:
    rollbacks, _ = judge(list(regression_messages()))
    assert len(rollbacks) == 1
    return rollbacks


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)
keys = (st.none() | st.binary(max_size=140) | st.text(max_size=140).map(str.encode)
        | st.sampled_from([b"a b", b"svc:x", b"{svc}", b"caf\xc3\xa9", b"\xff\xfe", b"x" * 129,
                           b"svc\n", b"other-service"])).filter(lambda k: k != SERVICE.encode())
values = (st.none() | st.binary(max_size=300)
          | json_values.map(lambda v: orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS)))
junk = st.lists(st.tuples(st.integers(0, 10**6), keys, values), max_size=25)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(junk)
def test_random_messages_between_a_regressions_events_leave_its_rollback_alone(
        extra: list[tuple[int, bytes | None, bytes | None]]) -> None:
    clean = list(regression_messages())
    mixed = list(clean)
    for position, key, value in sorted(extra, key=lambda item: item[0], reverse=True):
        mixed.insert(position % (len(mixed) + 1), (key, value))
    assert judge(mixed)[0] == clean_rollbacks()


@pytest.mark.parametrize("key", [b"a b", b"svc:x", b"{svc}", b"caf\xc3\xa9", b"\xff\xfe",
                                 b"x" * 129, b"svc\n", b"-leading-dash"])
def test_a_message_whose_key_is_no_service_name_is_a_dead_letter(key: bytes) -> None:
    """The key is never used as a service (no Redis key, no table row); the loop goes on."""
    clean = list(regression_messages())
    bad = (key, orjson.dumps({"event_id": "e", "ts": 1.0, "service": "x", "release": "r",
                              "metrics": {}}))
    rollbacks, reasons = judge([*clean[:20], bad, bad, *clean[20:]])
    assert reasons == ["bad_service_key", "bad_service_key"]
    assert len(rollbacks) == 1


def test_the_dead_letter_of_a_bad_key_names_the_key_and_keeps_the_value() -> None:
    table: dict[bytes, bytes] = {}
    loop: PartitionLoop[int] = PartitionLoop(default_policy(), b"s", table.get)
    out = loop.on_message(0, 0, b"a b", b"[1]", None, 0.0, 0)
    [letter] = [orjson.loads(d) for d in out.dead]
    assert letter["reason"] == "bad_service_key" and "b'a b'" in letter["detail"]
    assert letter["value"] == "[1]" and out.writes == [] and loop.counts["rejected"] == 1




def _big_json(rng: random.Random, size: int) -> bytes:
    events: list[dict[str, object]] = []
    while len(events) * 60 < size:
        events.append({"event_id": rng.random(), "ts": [rng.random()] * 3,
                       "metrics": {"error": "x" * rng.randint(0, 30)}})
    return orjson.dumps(events)[:size]  # cut anywhere: often not JSON at all


@pytest.mark.parametrize("seed", range(3))
def test_garbage_up_to_the_message_size_limit_and_deep_nesting_leave_the_rollback_alone(
        seed: int) -> None:
    """Values near the broker's 1 MB limit (random bytes, cut JSON, valid but wrong JSON) and
    nesting far deeper than any decoder's recursion limit are dead letters, every one, and
    the regression between them is still rolled back exactly once."""
    rng = random.Random(seed)
    garbage: list[Message] = [
        (SERVICE.encode(), rng.randbytes(900_000)),
        (SERVICE.encode(), _big_json(rng, 900_000)),
        (SERVICE.encode(), orjson.dumps([{"service": SERVICE}] * 20_000)),
        (SERVICE.encode(), b"[" * 200_000 + b"]" * 200_000),
        (SERVICE.encode(), b'{"a":' * 100_000 + b"1" + b"}" * 100_000),
        (None, b"[" * 200_000),
    ]
    clean = list(regression_messages())
    mixed = list(clean)
    for message in garbage:
        mixed.insert(rng.randrange(len(mixed) + 1), message)
    rollbacks, reasons = judge(mixed)
    assert rollbacks == clean_rollbacks()
    assert len(reasons) >= len(garbage)
