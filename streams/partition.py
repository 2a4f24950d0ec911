"""The worker's loop over the events-topic partitions it holds, with no Faust in it.

It owns, per partition, the gap guard (:mod:`rollguard.streams.gaps`), the checkpoints
(:mod:`rollguard.streams.checkpoint`), the messages not yet acknowledged, and the live monitors
of the services there (:class:`rollguard.detectors.monitors.MonitorSet`). Each call returns
:class:`Effects`:
plain data the Faust agents in :mod:`rollguard.streams.app` carry out, in the order the fields are
listed there. That order is what makes every event count exactly once:

- what a decision sent must be in Kafka before the state that made it is checkpointed, so a
  crash in between repeats the decision (commands are idempotent), never loses it;
- the services' states are written before the partition's applied offset, so a crash in
  between leaves services that skip what they already hold;
- a message is acknowledged only once a checkpoint holds it, so the committed offset never
  runs ahead of the stored state (Faust flushes the table writes before it commits).

Stored state is looked up through ``stored(key)``, the table's ``get``; time is passed in.

Each service is judged here only on the partition that owns it (``owner(key)``: the
partition the default partitioner gives its key, where its table entries live), whatever
partitioner the producer used. A message of the events topic on another partition is
forwarded (``Effects.forwards``) to the by-service topic, keyed by its service, which the
default partitioner puts on the owning partition; :meth:`PartitionLoop.on_forwarded` judges
it there. A message already on its owner's partition is judged at once (no extra hop). The
two sources are two lanes (:data:`rollguard.streams.checkpoint.FORWARDED`) with their own offsets,
checkpoints and acks, sharing the services' monitors and the table partition.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from rollguard.actions.commands import Command
from rollguard.actions.keys import SERVICE_RULE
from rollguard.actions.ramping import steer
from rollguard.actions.respond import COMMAND_TTL_S, respond, roles_of
from rollguard.actions.state import PointerState
from rollguard.detectors.decision import Decision
from rollguard.detectors.monitors import Fed, MonitorSet
from rollguard.detectors.policy import Policy
from rollguard.streams import messages
from rollguard.streams.checkpoint import FORWARDED, Checkpoints, applied_offset_key, unpack_lanes
from rollguard.streams.gaps import GapGuard
from rollguard.streams.route import Route, first_service, keyed, route
from rollguard.streams.wire import read_message

log = logging.getLogger(__name__)
H = TypeVar("H")


@dataclass
class Effects(Generic[H]):
    """What to do, in field order: seek, send, wait, write, acknowledge.

    ``seeks`` are ``(partition, offset)``; ``dead``, ``alerts``, ``audit`` and ``commands``
    are messages to send keyed ``key``; when any is there, every one of those sends must be
    in Kafka before the ``writes`` (``(partition, key, value)``, in order) are
    made; ``acks`` are the handles of the messages that may then be acknowledged.
    ``commanded`` names the services a command was issued for (their cached pointers are
    stale); ``events`` counts the valid events read. ``forwards`` are ``(key, value)``
    messages for the by-service topic, to be in Kafka before the ``acks``. Seeks name a lane
    (partition, plus ``FORWARDED`` for the by-service topic); writes name a table partition.
    """

    key: bytes | None = None
    seeks: list[tuple[int, int]] = field(default_factory=list)
    dead: list[bytes] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    alerts: list[bytes] = field(default_factory=list)
    audit: list[bytes] = field(default_factory=list)
    commands: list[bytes] = field(default_factory=list)
    commanded: list[str] = field(default_factory=list)
    writes: list[tuple[int, bytes, bytes]] = field(default_factory=list)
    acks: list[H] = field(default_factory=list)
    events: int = 0
    forwards: list[tuple[bytes, bytes | None]] = field(default_factory=list)


class PartitionLoop(Generic[H]):
    """Messages of the events topic in, :class:`Effects` out; see the module docstring.

    ``clock`` gives the wall-clock time stamped on decisions and commands, and the "now"
    events may not be dated much after (the policy's ``max_future_skew_seconds``); ``now``
    passed to each call is a monotonic time for checkpoint intervals and seek retries.
    ``owner`` gives the partition that judges a key (None: every message is judged where it
    is). ``command_ttl_s`` is how long the commands issued may take to reach the actuator.
    ``topics`` names the events and the by-service topic in the gap guard's warnings and
    counts.
    """

    def __init__(self, policy: Policy, secret: bytes, stored: Callable[[bytes], bytes | None],
                 interval_s: float = 2.0, clock: Callable[[], float] = time.time,
                 owner: Callable[[bytes], int] | None = None,
                 command_ttl_s: float = COMMAND_TTL_S,
                 topics: tuple[str, str] = ("events", "by-service")) -> None:
        self.secret = secret
        self.command_ttl_s = command_ttl_s
        self.clock = clock
        self.guard = GapGuard(where=lambda lane: (topics[lane >= FORWARDED], lane % FORWARDED))
        self.guard.accepted.update(dict.fromkeys(topics, 0))
        self.marks = Checkpoints(interval_s)
        self.monitors = MonitorSet(policy, restore=self._restore)
        self.counts: Counter[str] = Counter()
        self.rejections: Counter[str] = Counter()  # rejected items by reason code
        self._stored = stored
        self._unacked: dict[int, list[H]] = {}
        self._owner = owner

    def _restore(self, service: str) -> bytes | None:
        value = self._stored(service.encode())
        if not value:
            return None
        through, forwarded, state = unpack_lanes(value)
        self.marks.seed(service, (through, forwarded))
        return state

    @staticmethod
    def key_of(key: bytes | None, value: bytes | None) -> bytes | None:
        """The key a message is judged under: its own, or for an un-keyed message the
        service of its first valid item (its items of other services are dead letters).

        >>> one = b'{"event_id": "e", "ts": 1.0, "service": "%s", "release": "r", "metrics": {}}'
        >>> PartitionLoop.key_of(None, b"[1, " + one % b"a" + b", " + one % b"b" + b"]")
        b'a'
        >>> PartitionLoop.key_of(b"b", b"[]"), PartitionLoop.key_of(None, b"[]")
        (b'b', None)
        """
        return key or first_service(read_message(value))

    def route(self, partition: int, key: bytes | None, value: bytes | None,
              forwarded: bool = False) -> Route:
        """Decide once where a message of ``partition`` goes (:func:`~rollguard.streams.
        route.route`): the key it is judged under (:meth:`key_of`), its service, and
        whether this partition judges it; hand the route to :meth:`on_routed`."""
        return route(partition, key, value, forwarded, self._owner)

    def state_of(self, service: str) -> bytes | None:
        """The live state of ``service`` as bytes, None when this loop holds none."""
        return self.monitors.state_of(service)

    def on_message(self, partition: int, offset: int, key: bytes | None, value: bytes | None,
                   pointer: PointerState | None, now: float, handle: H) -> Effects[H]:
        """One message of the events topic's ``partition``, under its :meth:`key_of`;
        ``pointer`` is the version pointer of the service that key names (None: unkeyed,
        or none registered); ``handle`` comes back in ``acks`` once the message may be
        acknowledged. A message another partition owns is forwarded, not judged."""
        return self.on_routed(keyed(partition, key, False, self._owner), offset, value,
                              pointer, now, handle)

    def on_routed(self, routed: Route, offset: int, value: bytes | None,
                  pointer: PointerState | None, now: float, handle: H) -> Effects[H]:
        """One message at ``offset`` of its route's lane, routed by :meth:`route`;
        ``pointer`` is the version pointer of the route's service (None: none, or none
        registered). A message another partition owns is forwarded, not judged."""
        lane, key = routed.lane, routed.key
        out: Effects[H] = Effects(key=key)
        if not self._admit(lane, offset, now, handle, out):
            return out
        if not routed.owned:
            assert key is not None
            out.forwards.append((key, value))
            self.counts["forwarded"] += 1
            return self._done(lane, None, offset, now, out)
        return self._done(lane, self._handle(routed, value, offset, pointer, out),
                          offset, now, out)

    def on_forwarded(self, partition: int, offset: int, key: bytes | None,
                     value: bytes | None, pointer: PointerState | None, now: float,
                     handle: H) -> Effects[H]:
        """One message of the by-service topic's ``partition`` (forwarded by
        :meth:`on_message`), judged here as the events topic's own messages are."""
        return self.on_routed(keyed(partition, key, True, self._owner), offset, value,
                              pointer, now, handle)

    def on_undecodable(self, lane: int, first: int, last: int, reason: str, now: float,
                       handle: H) -> Effects[H]:
        """Offsets ``first``..``last`` of ``lane`` could not be decoded by the Kafka client
        (:mod:`rollguard.streams.undecodable`): one dead letter names them, and they count as
        read."""
        out: Effects[H] = Effects()
        if not self._admit(lane, first, now, handle, out):
            return out
        where = {"partition": lane % FORWARDED, "offsets": [first, last],
                 "topic": "by-service" if lane >= FORWARDED else "events"}
        out.dead.append(messages.dead_letter("undecodable", reason, where))
        self.counts["rejected"] += 1
        return self._done(lane, None, last, now, out)

    def _admit(self, lane: int, offset: int, now: float, handle: H, out: Effects[H]) -> bool:
        """Whether to process the message at ``offset`` (:mod:`rollguard.streams.gaps`). A
        message skipped because offsets before it are missing comes again after the seek and
        is acknowledged then, never now: acknowledged now, it would let the committed offset
        pass the missing ones before any checkpoint holds them."""
        applied = self._applied(lane)
        verdict = self.guard.admit(lane, offset, applied, now)
        if not verdict.later:
            self._unacked.setdefault(lane, []).append(handle)
        if applied is not None and offset <= applied:
            self.marks.redelivered(lane, now)
        if verdict.seek_to is not None:
            topic, partition = self.guard.where(lane)
            log.warning("monitor: offsets of %s partition %d missing before %d; reading again "
                        "from %d", topic, partition, offset, verdict.seek_to)
            out.seeks.append((lane, verdict.seek_to))
        return verdict.process

    def _applied(self, lane: int) -> int:
        """The last offset applied on ``lane``: this process's, or the table's; -1 when
        the table holds none (nothing was ever applied there: the first offset is due)."""
        marks = self.marks
        applied = marks.applied(lane)
        if applied is None:
            stored = self._stored(applied_offset_key(lane))
            if not stored:
                # With nothing committed Faust does not seek after a rebalance, so messages
                # it dropped meanwhile (faust-streaming #596) are only read again if the
                # guard expects offset 0. A log that starts later (retention) is a gap the
                # guard accepts once told the log start offset.
                return -1
            applied = int(stored)
            marks.restore(lane, applied)
        return applied

    def _done(self, lane: int, service: str | None, offset: int, now: float,
              out: Effects[H]) -> Effects[H]:
        self.marks.note(lane, service, offset, now)
        if out.decisions or out.commands or out.audit or self.marks.due(lane, now):
            self._checkpoint(lane, now, out)
        return out

    def _handle(self, routed: Route, value: bytes | None, offset: int,
                pointer: PointerState | None, out: Effects[H]) -> str | None:
        """Feed one message to its service's monitor; the service whose state changed."""
        key, service, lane = routed.key, routed.service, routed.lane
        if key and service is None:
            # Not a service name (not UTF-8, a space, ':', '{', too long...): the message
            # alone is set aside; its key never reaches Redis or the table.
            detail = f"message key {key[:160]!r} is not a service name ({SERVICE_RULE})"
            out.dead.append(messages.dead_letter("bad_service_key", detail, value))
            self.counts["rejected"] += 1
            return None
        if (service is not None and service not in self.monitors
                and self._holds(key, lane, offset)):
            return None  # a crash in mid-checkpoint: the stored state already counts it
        try:
            items = read_message(value) if routed.items is None else routed.items
            fed = self.monitors.feed(items, service, roles_of(pointer),
                                     now=self.clock())
            self._respond(fed, pointer, out)
            self._steer(fed.service, pointer, out)
        except Exception:  # a bug must not stop the stream: park the message, go on
            log.exception("monitor: message for %r could not be processed", service)
            out.dead.append(messages.dead_letter("processing_error", "", value))
            self.counts["rejected"] += 1
            self.rejections["processing_error"] += 1
            return None
        out.events = fed.events
        self.counts["events"] += fed.events
        if fed.rejected:
            self.counts["rejected"] += len(fed.rejected)
            self.rejections.update(r.reason for r in fed.rejected)
        return fed.service

    def _holds(self, key: bytes | None, lane: int, offset: int) -> bool:
        value = self._stored(key) if key else None
        if not value:
            return False
        events, forwarded, _ = unpack_lanes(value)
        through = forwarded if lane >= FORWARDED else events
        return through is not None and offset <= through

    def _respond(self, fed: Fed, pointer: PointerState | None, out: Effects[H]) -> None:
        out.dead.extend(messages.dead_letter(r.reason, r.detail, r.raw) for r in fed.rejected)
        for decision in fed.decisions:
            at = self.clock()
            response = respond(decision, pointer, at, self.secret, self.command_ttl_s)
            alerts, audit, commands = messages.decision_messages(decision, response, at)
            out.decisions.append(decision)
            out.alerts += alerts
            out.audit += audit
            out.commands += commands
            if isinstance(response, Command):
                out.commanded.append(decision.service)

    def _steer(self, service: str | None, pointer: PointerState | None,
               out: Effects[H]) -> None:
        """A guarded rollout under way (the pointer carries it): its verdicts carried out."""
        monitor = self.monitors.get(service) if service is not None else None
        if monitor is None:
            return
        idle = pointer is None or pointer.rollout is None
        if idle and monitor.rollout is None and not monitor.measure_ramp:
            return
        steered = steer(monitor, pointer, self.clock(), self.secret, self.command_ttl_s)
        alerts, audit, commands = messages.rollout_messages(steered)
        out.alerts += alerts
        out.audit += audit
        out.commands += commands
        if commands:
            out.commanded.append(monitor.service)

    def _checkpoint(self, partition: int, now: float, out: Effects[H]) -> None:
        for key, value in self.marks.writes(partition, now, self.monitors.state_of):
            out.writes.append((partition % FORWARDED, key, value))
        out.acks += self._unacked.pop(partition, [])

    def on_timer(self, now: float, ends: Mapping[int, int | None] | None = None,
                 starts: Mapping[int, int] | None = None) -> Effects[H]:
        """Checkpoint the partitions that went quiet (so their last messages are committed
        without waiting for more traffic), repeat seeks that lost the race against
        messages already fetched, and seek partitions stalled short of their end offset
        (``ends``: the events topic's high watermarks) (:mod:`rollguard.streams.gaps`).
        ``starts``: the log start offsets of the lanes ``guard.retrying(now)``."""
        out: Effects[H] = Effects()
        for partition in list(self._unacked):
            if self.marks.applied(partition) is not None and self.marks.due(partition, now):
                self._checkpoint(partition, now, out)
        out.seeks += self.guard.due(now, starts)
        for partition, end in (ends or {}).items():
            seek = self.guard.stalled(partition, self._applied(partition), end, now)
            if seek is not None:
                log.warning("monitor: partition %d stalled before its end %s; reading again "
                            "from %d", partition, end, seek)
                out.seeks.append((partition, seek))
        return out

    def on_revoked(self) -> None:
        """After a rebalance the table is the truth: live monitors, seeks and checkpoints
        may belong elsewhere now, and what was not acknowledged is read again by its owner."""
        self.monitors.forget()
        self.guard.forget()
        self.marks.forget()
        self._unacked.clear()
