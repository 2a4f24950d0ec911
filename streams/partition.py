"""The worker's loop over the events-topic partitions it holds, with no Faust in it.

It owns, per partition, the gap guard (:mod:`streams.gaps`), the checkpoints
(:mod:`streams.checkpoint`), the messages not yet acknowledged, and the live monitors of the
services there (:class:`detectors.monitors.MonitorSet`). Each call returns :class:`Effects`:
plain data the Faust agents in :mod:`streams.app` carry out, in the order the fields are
listed there. That order is what makes every event count exactly once:

- what a decision sent must be in Kafka before the state that made it is checkpointed, so a
  crash in between repeats the decision (commands are idempotent), never loses it;
- the services' states are written before the partition's applied offset, so a crash in
  between leaves services that skip what they already hold;
- a message is acknowledged only once a checkpoint holds it, so the committed offset never
  runs ahead of the stored state (Faust flushes the table writes before it commits).

Stored state is looked up through ``stored(key)``, the table's ``get``; time is passed in.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from actions.commands import Command
from actions.respond import respond, roles_of
from actions.state import PointerState
from detectors.decision import Decision
from detectors.monitors import Fed, MonitorSet
from detectors.policy import Policy
from streams import messages
from streams.checkpoint import Checkpoints, applied_offset_key, unpack
from streams.gaps import GapGuard
from streams.wire import read_message

log = logging.getLogger(__name__)
H = TypeVar("H")


@dataclass
class Effects(Generic[H]):
    """What to do, in field order: seek, send, wait, write, acknowledge.

    ``seeks`` are ``(partition, offset)``; ``dead``, ``alerts``, ``audit`` and ``commands``
    are messages to send keyed ``key``; when ``decisions`` is not empty, every one of those
    sends must be in Kafka before the ``writes`` (``(partition, key, value)``, in order) are
    made; ``acks`` are the handles of the messages that may then be acknowledged.
    ``commanded`` names the services a command was issued for (their cached pointers are
    stale); ``events`` counts the valid events read.
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


class PartitionLoop(Generic[H]):
    """Messages of the events topic in, :class:`Effects` out; see the module docstring.

    ``clock`` gives the wall-clock time stamped on decisions and commands; ``now`` passed
    to each call is a monotonic time for checkpoint intervals and seek retries.
    """

    def __init__(self, policy: Policy, secret: bytes, stored: Callable[[bytes], bytes | None],
                 interval_s: float = 2.0, clock: Callable[[], float] = time.time) -> None:
        self.secret = secret
        self.clock = clock
        self.guard = GapGuard()
        self.marks = Checkpoints(interval_s)
        self.monitors = MonitorSet(policy, restore=self._restore)
        self.counts: Counter[str] = Counter()
        self.rejections: Counter[str] = Counter()  # rejected items by reason code
        self._stored = stored
        self._unacked: dict[int, list[H]] = {}

    def _restore(self, service: str) -> bytes | None:
        value = self._stored(service.encode())
        return unpack(value)[1] if value else None

    def state_of(self, service: str) -> bytes | None:
        """The live state of ``service`` as bytes, None when this loop holds none."""
        return self.monitors.state_of(service)

    def on_message(self, partition: int, offset: int, key: bytes | None, value: bytes | None,
                   pointer: PointerState | None, now: float, handle: H) -> Effects[H]:
        """One message of ``partition``; ``pointer`` is the version pointer of the service
        its key names (None: unkeyed, or none registered); ``handle`` comes back in
        ``acks`` once the message may be acknowledged."""
        out: Effects[H] = Effects(key=key)
        self._unacked.setdefault(partition, []).append(handle)
        marks = self.marks
        if marks.applied(partition) is None:
            applied = self._stored(applied_offset_key(partition))
            marks.restore(partition, int(applied) if applied else None)
        verdict = self.guard.admit(partition, offset, marks.applied(partition), now)
        if verdict.seek_to is not None:
            log.warning("monitor: offsets skipped on partition %d; reading again from %d",
                        partition, verdict.seek_to)
            out.seeks.append((partition, verdict.seek_to))
        if verdict.process:
            service = self._handle(key, value, offset, pointer, out)
            marks.note(partition, service, offset, now)
            if out.decisions or marks.due(partition, now):
                self._checkpoint(partition, now, out)
        return out

    def _handle(self, key: bytes | None, value: bytes | None, offset: int,
                pointer: PointerState | None, out: Effects[H]) -> str | None:
        """Feed one message to its service's monitor; the service whose state changed."""
        service = key.decode("utf-8", "replace") if key else None
        if service is not None and service not in self.monitors and self._holds(key, offset):
            return None  # a crash in mid-checkpoint: the stored state already counts it
        try:
            fed = self.monitors.feed(read_message(value), service, roles_of(pointer))
            self._respond(fed, pointer, out)
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

    def _holds(self, key: bytes | None, offset: int) -> bool:
        value = self._stored(key) if key else None
        through = unpack(value)[0] if value else None
        return through is not None and offset <= through

    def _respond(self, fed: Fed, pointer: PointerState | None, out: Effects[H]) -> None:
        out.dead.extend(messages.dead_letter(r.reason, r.detail, r.raw) for r in fed.rejected)
        for decision in fed.decisions:
            at = self.clock()
            response = respond(decision, pointer, at, self.secret)
            alerts, audit, commands = messages.decision_messages(decision, response, at)
            out.decisions.append(decision)
            out.alerts += alerts
            out.audit += audit
            out.commands += commands
            if isinstance(response, Command):
                out.commanded.append(decision.service)

    def _checkpoint(self, partition: int, now: float, out: Effects[H]) -> None:
        for key, value in self.marks.writes(partition, now, self.monitors.state_of):
            out.writes.append((partition, key, value))
        out.acks += self._unacked.pop(partition, [])

    def on_timer(self, now: float) -> Effects[H]:
        """Checkpoint the partitions that went quiet (so their last messages are committed
        without waiting for more traffic), and repeat seeks that lost the race against
        messages already fetched (:mod:`streams.gaps`)."""
        out: Effects[H] = Effects()
        for partition in list(self._unacked):
            if self.marks.applied(partition) is not None and self.marks.due(partition, now):
                self._checkpoint(partition, now, out)
        out.seeks += self.guard.due(now)
        return out

    def on_revoked(self) -> None:
        """After a rebalance the table is the truth: live monitors, seeks and checkpoints
        may belong elsewhere now, and what was not acknowledged is read again by its owner."""
        self.monitors.forget()
        self.guard.forget()
        self.marks.forget()
        self._unacked.clear()
