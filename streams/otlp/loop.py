"""The worker's loop over the OTLP topics' partitions, with no Faust in it.

One message of the Collector's kafka exporter (no key, many services) is read
(:class:`~rollguard.streams.otlp.translate.OtlpReader`) and each service's events are
*forwarded* to the by-service topic keyed by that service, as wire-format blocks
(:func:`rollguard.streams.wire.blocks_of`): the partition that owns the service judges
them there like any forwarded message of the events topic
(:mod:`rollguard.streams.partition`), with its exactly-once checkpoints. Bad records are
dead letters, one per record, with their reason code. In the worker, a service's events are
gathered across messages for up to ``linger_s`` (or ``max_gathered`` events) and sent as one
forward: the per-message costs downstream are then paid once per service per linger, not
once per service per message.

A message is acknowledged only once

- no forward is gathered and unsent (then none is acknowledged at all), and
- what it forwarded and dead-lettered is in Kafka (the edge waits for those sends before
  acknowledging), and
- none of its records is still held by the evaluator join, waiting for its output: a held
  record is released when its output comes (its event forwarded with the message that
  brought the output) or let go when its window passes (a ``release_unknown`` dead letter);
- and every message before it on its partition may be acknowledged too: acknowledgements
  leave in offset order (Faust commits over a single missing offset, so a message left
  unacknowledged between two acknowledged ones could be committed over).

A crash before the acknowledgement reads the message again: its events are forwarded again
with the same event ids (derived from the records), which the owning monitor drops as
duplicates. Messages waiting behind a held record are bounded: past ``max_unacked`` on a
partition, the oldest held records are let go early.

The gap guard (:mod:`rollguard.streams.gaps`) catches messages Faust skips in the middle of
a partition (the offset after the last one read here), not those before the first read
after an assignment (nothing is stored per OTLP partition).

Effects reuse :class:`rollguard.streams.partition.Effects`: ``seeks`` (lanes: the logs
topic's partition, plus :data:`TRACES_LANE` for the spans topic), ``forwards``, ``dead`` and
``acks``; time is passed in (monotonic seconds, the join's clock).
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson

from rollguard.detectors.blocks import Block
from rollguard.detectors.evaluations import OtelMapping
from rollguard.streams import messages
from rollguard.streams.gaps import GapGuard
from rollguard.streams.otlp.join import Join
from rollguard.streams.otlp.translate import OtlpReader, Result
from rollguard.streams.partition import Effects
from rollguard.streams.wire import MAX_BATCH_BYTES

log = logging.getLogger(__name__)
H = TypeVar("H")
TRACES_LANE = 1 << 20  # lane of spans-topic partition p: p + TRACES_LANE
MAX_UNACKED = 10_000  # messages of a partition waiting behind a held record, at most
# Forwards gathered per service across messages before they are sent: a message of the
# Collector holds a few records of each of many services, and every forwarded message costs
# a send, a read and a judging turn whatever its size (about 200 µs).
FORWARD_LINGER_S = 0.05
FORWARD_MAX_RECORDS = 5_000
MAX_NAMES_SHOWN = 100  # unknown evaluation names counted by name; the rest as OTHER_NAME
OTHER_NAME = "(other)"


@dataclass(slots=True, eq=False)
class _Message(Generic[H]):
    lane: int
    offset: int
    handle: H
    held: int = 0  # its records the join holds now


class TrackedJoin(Join[Any]):
    """A :class:`Join` that knows which message each held evaluation came from, and counts
    it down when the evaluation is released or let go."""

    def __init__(self, window_s: float = 300.0, max_entries: int = 200_000,
                 max_held: int = 20_000, remember_s: float | None = None) -> None:
        super().__init__(window_s, max_entries, max_held, remember_s)
        self.current: _Message[Any] | None = None  # the message being read
        self.origins: dict[int, _Message[Any]] = {}

    def hold(self, keys: tuple[str, ...], item: Any, now: float) -> list[Any]:
        if self.current is not None:
            self.origins[id(item)] = self.current
            self.current.held += 1
        return self._released(super().hold(keys, item, now))

    def remember(self, keys: Iterable[str], output: Any, now: float) -> list[Any]:
        return self._released(super().remember(keys, output, now))

    def expire(self, now: float) -> list[Any]:
        return self._released(super().expire(now))

    def let_go_oldest(self) -> list[Any]:
        return self._released(super().let_go_oldest())

    def drop_held(self) -> int:
        self.origins.clear()
        return super().drop_held()

    def _released(self, items: list[Any]) -> list[Any]:
        for item in items:
            message = self.origins.pop(id(item), None)
            if message is not None:
                message.held -= 1
        return items


class OtlpLoop(Generic[H]):
    """OTLP messages in, :class:`~rollguard.streams.partition.Effects` out; see the module
    docstring. ``topics``: the topic of each signal read (``logs``, ``traces``), for the
    gap guard's warnings."""

    def __init__(self, mapping: OtelMapping, encoding: str, topics: Mapping[str, str],
                 join: TrackedJoin | None = None, max_unacked: int = MAX_UNACKED,
                 linger_s: float = 0.0, max_gathered: int = FORWARD_MAX_RECORDS) -> None:
        self.encoding = encoding
        self.topics = dict(topics)
        # Outputs are remembered as long as their evaluations may come late and still count.
        self.join = join if join is not None else TrackedJoin(
            remember_s=mapping.evaluation_lateness_seconds)
        self.reader = OtlpReader(mapping, self.join)
        self.max_unacked = max_unacked
        self.guard = GapGuard(where=self.where)
        self.guard.accepted.update(dict.fromkeys(self.topics.values(), 0))
        self.counts: Counter[str] = Counter()  # messages, records, events, forwards, rejected
        self.rejections: Counter[str] = Counter()  # dead letters by reason
        self.skipped: Counter[str] = Counter()  # records counted, not judged, by reason
        self.unknown: Counter[str] = Counter()  # unknown evaluation names (bounded)
        self._queues: dict[int, deque[_Message[H]]] = {}
        self._last: dict[int, int] = {}  # the last offset read per lane, by this process
        # Forwards gathered (``linger_s`` > 0): no message is acknowledged while any wait.
        self.linger_s = linger_s
        self.max_gathered = max_gathered
        self._gathered: dict[str, list[Any]] = {}
        self._gathered_count = 0
        self._gathered_since: float | None = None

    def where(self, lane: int) -> tuple[str, int]:
        """The topic and partition of a lane."""
        signal = "traces" if lane >= TRACES_LANE else "logs"
        return self.topics.get(signal, signal), lane % TRACES_LANE

    @staticmethod
    def lane(signal: str, partition: int) -> int:
        """The lane of a partition of the logs or the spans topic."""
        return partition + (TRACES_LANE if signal == "traces" else 0)

    @property
    def waiting(self) -> int:
        """Messages read and not yet acknowledged (behind a held record, or holding one)."""
        return sum(len(queue) for queue in self._queues.values())

    def on_message(self, signal: str, partition: int, offset: int, value: bytes | None,
                   now: float, handle: H) -> Effects[H]:
        """One message of the ``signal`` topic's ``partition``; ``handle`` comes back in
        ``acks`` once it may be acknowledged."""
        lane = self.lane(signal, partition)
        out: Effects[H] = Effects()
        verdict = self.guard.admit(lane, offset, self._last.get(lane), now)
        if verdict.seek_to is not None:
            topic, number = self.where(lane)
            log.warning("otlp: offsets of %s partition %d missing before %d; reading again "
                        "from %d", topic, number, offset, verdict.seek_to)
            out.seeks.append((lane, verdict.seek_to))
        if verdict.later:
            return out  # comes again after the seek: acknowledged then
        message: _Message[H] = _Message(lane, offset, handle)
        queue = self._queues.setdefault(lane, deque())
        queue.append(message)
        if verdict.process:
            self._last[lane] = offset
            self._read(message, signal, value, now, out)
            self._bound(queue, out)
        self._flush(now, out)
        self._release(out)
        return out

    def on_tick(self, now: float) -> Effects[H]:
        """Send the gathered forwards whose linger passed, and acknowledge what that frees."""
        out: Effects[H] = Effects()
        self._flush(now, out)
        self._release(out)
        return out

    def on_undecodable(self, signal: str, partition: int, first: int, last: int, reason: str,
                       now: float, handle: H) -> Effects[H]:
        """Offsets ``first``..``last`` could not be decoded by the Kafka client
        (:mod:`rollguard.streams.undecodable`): one dead letter names them; they count as
        read."""
        lane = self.lane(signal, partition)
        out: Effects[H] = Effects()
        verdict = self.guard.admit(lane, first, self._last.get(lane), now)
        if verdict.seek_to is not None:
            out.seeks.append((lane, verdict.seek_to))
        if verdict.later:
            return out
        self._queues.setdefault(lane, deque()).append(_Message(lane, last, handle))
        if verdict.process:
            self._last[lane] = last
            topic, number = self.where(lane)
            self._dead("undecodable", reason, {"topic": topic, "partition": number,
                                                "offsets": [first, last]}, out)
        self._release(out)
        return out

    def on_timer(self, now: float, ends: Mapping[int, int | None] | None = None,
                 ) -> Effects[H]:
        """Let go the held records whose window passed (dead letters), acknowledge what
        that frees, repeat seeks that lost the race against messages already fetched, and
        seek lanes stalled short of their end offset (``ends``, by lane: Faust dropped
        their last messages, faust-streaming #596)."""
        out: Effects[H] = Effects()
        self._effects(self.reader.expire(now), out)
        self._flush(now, out)
        out.seeks += self.guard.due(now)
        for lane, end in (ends or {}).items():
            seek = self.guard.stalled(lane, self._last.get(lane), end, now)
            if seek is not None:
                topic, number = self.where(lane)
                log.warning("otlp: %s partition %d stalled before its end %s; reading again "
                            "from %d", topic, number, end, seek)
                out.seeks.append((lane, seek))
        self._release(out)
        return out

    def on_revoked(self) -> None:
        """After a rebalance what was not acknowledged is read again by its partition's new
        owner: held records are dropped (the outputs remembered are kept)."""
        self._queues.clear()
        self._last.clear()
        self._gathered.clear()
        self._gathered_count, self._gathered_since = 0, None
        self.guard.forget()
        self.join.drop_held()

    def _read(self, message: _Message[H], signal: str, value: bytes | None, now: float,
              out: Effects[H]) -> None:
        self.counts["messages"] += 1
        self.join.current = message
        try:
            result = self.reader.read(value, self.encoding, signal, now)
        except Exception:  # a bug must not stop the stream: park the message, go on
            log.exception("otlp: a message of %s could not be read", self.where(message.lane))
            self._dead("processing_error", "", value, out)
            return
        finally:
            self.join.current = None
        self._effects(result, out)

    def _effects(self, result: Result, out: Effects[H]) -> None:
        self.counts["records"] += result.records
        self.counts["held"] += result.held
        self.skipped.update(result.skipped)
        self._unknown(result.unknown)
        for _item, raw, error in result.rejected:
            assert error is not None
            self._dead(error.reason, error.detail, raw, out)
        for service, items in result.items.items():
            good: list[Any] = []
            events = 0
            for item, raw, error in items:
                if error is not None or item is None:
                    self._dead(error.reason if error else "invalid", error.detail if error
                               else "", raw, out)
                    continue
                good.append(raw)
                events += len(item.event_ids) if isinstance(item, Block) else 1
            out.events += events
            self.counts["events"] += events
            self._gather(service, good, events, out)

    def _gather(self, service: str, raws: list[Any], events: int, out: Effects[H]) -> None:
        if not raws:
            return
        if self.linger_s <= 0:
            self._forward(service, raws, out)
            return
        self._gathered.setdefault(service, []).extend(raws)
        self._gathered_count += events

    def _flush(self, now: float, out: Effects[H]) -> None:
        """Forward what was gathered, when ``max_gathered`` events wait or the oldest has
        waited ``linger_s``."""
        if not self._gathered:
            self._gathered_since = None
            return
        if self._gathered_since is None:
            self._gathered_since = now
        if (self._gathered_count < self.max_gathered
                and now - self._gathered_since < self.linger_s):
            return
        for service, raws in self._gathered.items():
            self._forward(service, raws, out)
        self._gathered.clear()
        self._gathered_count, self._gathered_since = 0, None

    def _forward(self, service: str, raws: list[Any], out: Effects[H]) -> None:
        values = encoded(raws)
        out.forwards += [(service.encode(), value) for value in values]
        self.counts["forwards"] += len(values)

    def _dead(self, reason: str, detail: str, raw: Any, out: Effects[H]) -> None:
        out.dead.append(messages.dead_letter(reason, detail, raw))
        self.counts["rejected"] += 1
        self.rejections[reason] += 1

    def _unknown(self, names: Counter[str]) -> None:
        for name, count in names.items():
            if name not in self.unknown and len(self.unknown) >= MAX_NAMES_SHOWN:
                name = OTHER_NAME
            elif name not in self.unknown:
                log.warning("otlp: evaluation name %r is not in the policy's opentelemetry "
                            "mapping: its results are counted, not judged", name[:200])
            self.unknown[name] += count

    def _bound(self, queue: deque[_Message[H]], out: Effects[H]) -> None:
        """Past ``max_unacked`` waiting messages, let the oldest held records go."""
        while len(queue) > self.max_unacked and queue[0].held > 0:
            result = self.reader.let_go_oldest()
            if not result.rejected:
                break
            self._effects(result, out)

    def _release(self, out: Effects[H]) -> None:
        """Acknowledge, per lane in offset order, the messages none of whose records (nor
        an earlier message's) is held; none while forwards are gathered (any message read
        may have given some, or freed a held record of another lane into them)."""
        if self._gathered:
            return
        for queue in self._queues.values():
            while queue and queue[0].held <= 0:
                out.acks.append(queue.popleft().handle)


def encoded(raws: list[Any], limit: int = MAX_BATCH_BYTES) -> list[bytes]:
    """Events and blocks (decoded) as message values of at most ``limit`` bytes: one,
    unless they are more (then halved, a single block by its columns)."""
    if not raws:
        return []
    value = orjson.dumps(raws)
    if len(value) <= limit:
        return [value]
    if len(raws) > 1:
        half = len(raws) // 2
        return encoded(raws[:half], limit) + encoded(raws[half:], limit)
    [one] = raws
    ids = one.get("event_id") if isinstance(one, dict) else None
    if not isinstance(ids, list) or len(ids) < 2:
        return [value]  # one event: as it is (the Collector's own limit bounds it)
    half = len(ids) // 2
    return encoded([_columns(one, 0, half), _columns(one, half, len(ids))], limit)


def _columns(block: dict[str, Any], start: int, stop: int) -> dict[str, Any]:
    out = dict(block)
    out["event_id"] = block["event_id"][start:stop]
    out["ts"] = block["ts"][start:stop]
    out["metrics"] = {name: column[start:stop] for name, column in block["metrics"].items()}
    return out
