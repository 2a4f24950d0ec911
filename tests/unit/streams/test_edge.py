"""The worker's edge: one routing per message, and the exactly-once order of carry_out."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
import pytest
from faust.types import TP

from rollguard.actions.state import PointerState
from rollguard.detectors.decision import Decision, DecisionAction, Verdict
from rollguard.detectors.policy import default_policy
from rollguard.streams import partition as partition_module
from rollguard.streams import route as route_module
from rollguard.streams.app import Edge, Handle
from rollguard.streams.checkpoint import FORWARDED
from rollguard.streams.partition import Effects, PartitionLoop
from tests.support.fakes import FakeTopic, Log

T0 = 1_700_000_000.0


@dataclass
class FakeConsumer:
    log: Log
    starts: dict[Any, int] | None = None  # None: the broker cannot be asked

    async def seek(self, tp: Any, offset: int) -> None:
        self.log.append(("seek", tp.topic, str(tp.partition), str(offset)))

    async def seek_wait(self, partitions: Any) -> None:  # the worker seeks in Faust's thread
        for tp, offset in partitions.items():
            await self.seek(tp, offset)

    async def earliest_offsets(self, *tps: Any) -> dict[Any, int]:
        if self.starts is None:
            raise ConnectionError("broker away")
        return {tp: self.starts[tp] for tp in tps}


@dataclass
class FakeApp:
    consumer: FakeConsumer


@dataclass
class FakeTable:
    log: Log

    def write(self, partition: int, key: bytes, value: bytes) -> None:
        self.log.append(("write", str(partition), key.decode()))


@dataclass
class FakePointers:
    """A pointer cache that knows every service (and has no pointer for any)."""

    log: Log
    asked: list[str] = field(default_factory=list)

    def cached(self, service: str) -> tuple[bool, PointerState | None]:
        self.asked.append(service)
        return True, None

    def invalidate(self, service: str) -> None:
        self.log.append(("invalidate", service))


@dataclass
class FakeMetrics:
    log: Log

    def on_decisions(self, decisions: list[Decision]) -> None:
        self.log.append(("metrics", str(len(decisions))))


@dataclass
class FakeStream:
    log: Log

    async def ack(self, event: Any) -> None:
        self.log.append(("ack", str(event)))


def fake_edge(log: Log) -> tuple[Edge, FakePointers]:
    """An Edge whose topics, table, consumer, pointers and metrics are fakes."""
    edge = Edge.__new__(Edge)
    pointers = FakePointers(log)
    fakes: dict[str, Any] = {
        "app": FakeApp(FakeConsumer(log)), "events_topic": "events",
        "by_service": FakeTopic("by-service", log), "dead": FakeTopic("dead", log),
        "alerts": FakeTopic("alerts", log), "audit": FakeTopic("audit", log),
        "commands": FakeTopic("commands", log), "states": FakeTable(log),
        "metrics": FakeMetrics(log), "pointers": pointers, "forwarding": [],
    }
    for name, value in fakes.items():
        setattr(edge, name, value)
    return edge, pointers


def decision() -> Decision:
    return Decision(ts=T0, service="chat", release="v2", action=DecisionAction.ROLLBACK,
                    verdict=Verdict.SUSTAINED, to="v1", components=[], reason="worse")


def first(log: Log, kind: str) -> int:
    return min(i for i, entry in enumerate(log) if entry[0] == kind)


def last(log: Log, kind: str, *topics: str) -> int:
    return max(i for i, entry in enumerate(log)
               if entry[0] == kind and (not topics or entry[1] in topics))


async def test_carry_out_keeps_the_exactly_once_order() -> None:
    """Seeks first; a decision's alerts, audit records and commands are in Kafka before the
    table holds the state that made them; forwards are in Kafka before any ack; acks last."""
    log: Log = []
    edge, _ = fake_edge(log)
    stream = FakeStream(log)
    out: Effects[Any] = Effects(
        key=b"chat", seeks=[(0, 7), (1 + FORWARDED, 3)], forwards=[(b"other", b"fwd")],
        dead=[b"dead"], decisions=[decision()], alerts=[b"alert"], audit=[b"audit"],
        commands=[b"command"], commanded=["chat"],
        writes=[(0, b"chat", b"state"), (0, b"offset", b"9")],
        acks=[(stream, "m1"), (stream, "m2")])
    await edge.carry_out(out)
    assert log[:2] == [("seek", "events", "0", "7"), ("seek", "by-service", "1", "3")]
    for topic in ("alerts", "audit", "commands"):
        assert ("delivered", topic, topic.removesuffix("s")) in log
    assert last(log, "delivered", "alerts", "audit", "commands") < first(log, "write")
    assert first(log, "metrics") < first(log, "write")
    assert first(log, "invalidate") < first(log, "write")
    assert [e for e in log if e[0] == "write"] == [("write", "0", "chat"),
                                                   ("write", "0", "offset")]
    assert last(log, "delivered", "by-service") < first(log, "ack")
    assert log[-2:] == [("ack", "m1"), ("ack", "m2")]
    assert edge.forwarding == []


async def test_a_forward_is_in_kafka_before_a_later_message_is_acknowledged() -> None:
    """A forward whose message is not acknowledged yet is awaited before the next acks."""
    log: Log = []
    edge, _ = fake_edge(log)
    await edge.carry_out(Effects(forwards=[(b"other", b"fwd")]))
    assert ("delivered", "by-service", "fwd") not in log
    await edge.carry_out(Effects(acks=[(FakeStream(log), "m1")]))  # type: ignore[list-item]
    assert log[-2:] == [("delivered", "by-service", "fwd"), ("ack", "m1")]


async def test_without_a_decision_nothing_waits_for_the_sends() -> None:
    """Dead letters alone are sent, not awaited, and writes follow at once."""
    log: Log = []
    edge, _ = fake_edge(log)
    await edge.carry_out(Effects(dead=[b"bad"], writes=[(0, b"chat", b"s")]))
    assert log == [("send", "dead", "bad"), ("write", "0", "chat")]


@dataclass
class FakeMessage:
    topic: str
    partition: int
    offset: int


@dataclass
class FakeEvent:
    message: FakeMessage
    key: bytes | None
    value: bytes


def block(service: str) -> bytes:
    return orjson.dumps([{"service": service, "release": "r1", "event_id": ["e0", "e1"],
                          "ts": [T0, T0 + 1], "metrics": {"error": [0, 0]}}])


async def step(partition: int, key: bytes | None, value: bytes,
               forwarded: bool = False) -> tuple[Effects[Handle], list[str]]:
    edge, pointers = fake_edge([])
    table: dict[bytes, bytes] = {}
    loop: PartitionLoop[Handle] = PartitionLoop(default_policy(), b"secret", table.get,
                                                clock=lambda: T0, owner=lambda key: 0)
    event = FakeEvent(FakeMessage("events", partition, 0), key, value)
    out = await edge.step(loop, cast(Any, None), cast(Any, event), forwarded)
    return out, pointers.asked


async def test_a_message_on_its_owner_is_judged_with_its_service_pointer() -> None:
    """The edge fetches the pointer of the routed service only, once."""
    out, asked = await step(0, b"chat", block("chat"))
    assert asked == ["chat"]
    assert out.forwards == [] and out.events == 2


async def test_a_message_another_partition_owns_is_forwarded_without_a_pointer() -> None:
    """No pointer is read for a message this partition does not judge."""
    value = block("chat")
    out, asked = await step(1, b"chat", value)
    assert asked == []
    assert out.forwards == [(b"chat", value)]


async def test_a_forwarded_message_is_judged_wherever_it_arrives() -> None:
    """The by-service topic's messages are already on their owner."""
    out, asked = await step(1, b"chat", block("chat"), forwarded=True)
    assert asked == ["chat"] and out.events == 2


async def test_a_bad_key_reads_no_pointer() -> None:
    """A key that is no service name is dead-lettered, and never reaches Redis."""
    out, asked = await step(0, b"a b", block("chat"))
    assert asked == []
    assert len(out.dead) == 1


async def test_an_unkeyed_message_is_decoded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding an un-keyed message's service and judging it share one decoding."""
    calls: list[bytes | None] = []
    real = route_module.read_message

    def counted(value: bytes | None) -> Iterator[Any]:
        calls.append(value)
        return real(value)

    monkeypatch.setattr(route_module, "read_message", counted)
    monkeypatch.setattr(partition_module, "read_message", counted)
    out, asked = await step(0, None, block("chat"))
    assert asked == ["chat"] and out.key == b"chat" and out.events == 2
    assert len(calls) == 1


async def test_the_log_starts_of_lanes_are_asked_of_the_broker_by_topic_partition(
        caplog: pytest.LogCaptureFixture) -> None:
    """The gap guard's lanes are the events topic's partitions and, past FORWARDED, the
    by-service topic's; a broker that cannot answer gives none (the retries decide)."""
    log: Log = []
    edge, _ = fake_edge(log)
    consumer = cast(FakeConsumer, edge.app.consumer)
    consumer.starts = {TP("events", 2): 40, TP("by-service", 2): 7}
    assert await edge.starts([2, 2 + FORWARDED]) == {2: 40, 2 + FORWARDED: 7}
    consumer.starts = None
    assert await edge.starts([2]) == {}
    assert "log start offsets of [TP(topic='events', partition=2)] not known" in caplog.text
