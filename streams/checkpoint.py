"""When the worker writes live detector state to its changelogged table, and what it writes.

Why not after every message: serialising a service's state costs about a millisecond (its
open bucket is summed exactly), far more than the events of a typical message. The live
monitors in memory are the truth while the worker runs; the table is a checkpoint of them.

The rules, per events-topic partition:

- A partition is checkpointed when ``interval_s`` has passed since its last checkpoint (on
  its next message, or from a timer once it went quiet; the changelog write always goes to
  that same partition, see :mod:`rollguard.streams.table`), and at once after a message that
  produced a decision, once what the decision sent is in Kafka.
- Messages are acknowledged only when a checkpoint holds them, so the committed offset never
  runs ahead of the stored state.
- A checkpoint writes every service changed since the last one, each with the offset it has
  applied through, and then the partition's applied offset.
- After a crash or a rebalance, messages after the checkpoint are read again (the gap guard,
  :mod:`rollguard.streams.gaps`, seeks back to the partition's applied offset + 1); a service whose
  stored state already covers a message (a crash in the middle of a checkpoint) skips it.
  So every event is counted exactly once in the state, whatever fails when.

Pure: offsets and the clock are passed in.

>>> marks = Checkpoints(interval_s=2.0)
>>> marks.applied(0) is None
True
>>> marks.note(0, "chat", offset=7, now=10.0)
>>> marks.due(0, now=11.0), marks.due(0, now=12.5)
(False, True)
>>> marks.take(0, now=12.5)
({'chat': 7}, 7)
>>> marks.take(0, now=12.6)
({}, 7)
>>> unpack(pack(7, b"RGSM..."))
(7, b'RGSM...')

Messages of a service reach it by two lanes (:mod:`rollguard.streams.partition`): straight from its
events-topic partition, or forwarded through the by-service topic; a lane is numbered by its
partition, plus :data:`FORWARDED` for the by-service topic. A stored state holds the offset it
has applied through on each lane:

>>> marks.seed("chat", (7, None))
>>> marks.note(0 + FORWARDED, "chat", offset=3, now=13.0)
>>> [unpack_lanes(v) for _, v in marks.writes(FORWARDED, 13.0, lambda s: b"S")][0]
(7, 3, b'S')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

CHECKPOINT_MAGIC = b"RGCK"
LANES_MAGIC = b"RGC2"  # the offsets applied through on both lanes
FORWARDED = 1 << 20  # lane of by-service topic partition p: p + FORWARDED
Throughs = tuple[int | None, int | None]  # (events lane, forwarded lane)


def applied_offset_key(partition: int) -> bytes:
    """Table key of the last events offset applied on a partition (no service name has NUL)."""
    return b"\x00applied-offset:%d" % partition


def pack(through: int, state: bytes, forwarded: int | None = None) -> bytes:
    """A table value: the offset the state has applied through (on the events lane, and on
    the forwarded lane when given), then the state itself."""
    if forwarded is None:
        return CHECKPOINT_MAGIC + through.to_bytes(8, "big", signed=True) + state
    return (LANES_MAGIC + through.to_bytes(8, "big", signed=True)
            + forwarded.to_bytes(8, "big", signed=True) + state)


def unpack(value: bytes) -> tuple[int | None, bytes]:
    """``(through_offset, state)`` of a table value; a bare state has no offset."""
    through, _, state = unpack_lanes(value)
    return through, state


def unpack_lanes(value: bytes) -> tuple[int | None, int | None, bytes]:
    """``(events_through, forwarded_through, state)`` of a table value (None: no offset)."""
    if value[:4] == CHECKPOINT_MAGIC:
        return int.from_bytes(value[4:12], "big", signed=True), None, value[12:]
    if value[:4] == LANES_MAGIC:
        through, forwarded = (int.from_bytes(value[i:i + 8], "big", signed=True)
                              for i in (4, 12))
        return (through if through >= 0 else None,
                forwarded if forwarded >= 0 else None, value[20:])
    return None, None, value


@dataclass
class Checkpoints:
    """Per partition: the services changed since the last checkpoint, and when it was."""

    interval_s: float = 2.0
    _dirty: dict[int, dict[str, int]] = field(default_factory=dict)
    _applied: dict[int, int] = field(default_factory=dict)
    _since: dict[int, float] = field(default_factory=dict)
    _through: dict[str, Throughs] = field(default_factory=dict)  # per service, both lanes

    def applied(self, partition: int) -> int | None:
        """The last offset handled on ``partition`` by this process (None: none yet)."""
        return self._applied.get(partition)

    def restore(self, partition: int, offset: int | None) -> None:
        """Start from the offset the table holds for ``partition``."""
        if offset is not None:
            self._applied[partition] = offset

    def note(self, partition: int, service: str | None, offset: int, now: float) -> None:
        """A message at ``offset`` was handled; ``service``'s state changed (if not None)."""
        self._applied[partition] = offset
        self._since.setdefault(partition, now)
        if service is not None:
            self._dirty.setdefault(partition, {})[service] = offset
            events, forwarded = self._through.get(service, (None, None))
            self._through[service] = ((offset, forwarded) if partition < FORWARDED
                                      else (events, offset))

    def redelivered(self, partition: int, now: float) -> None:
        """A message at or below the applied offset came again and was skipped: a checkpoint
        of ``partition`` is due in ``interval_s`` all the same, to acknowledge it (else a
        partition that only re-reads, after a restart, never commits)."""
        self._since.setdefault(partition, now)

    def seed(self, service: str, throughs: Throughs) -> None:
        """A service restored from the table: the offsets its stored state holds (kept for
        the day the other lane feeds it too)."""
        self._through[service] = throughs

    def due(self, partition: int, now: float) -> bool:
        return now - self._since.get(partition, now) >= self.interval_s

    def since(self) -> dict[int, float]:
        """When each partition held was last checkpointed (before the first checkpoint: when
        its first message was handled), as the ``now`` passed in."""
        return dict(self._since)

    def take(self, partition: int, now: float) -> tuple[dict[str, int], int]:
        """The services to write with their offsets, and the partition's applied offset;
        the caller writes them (services first) and the partition counts as clean."""
        self._since[partition] = now
        return self._dirty.pop(partition, {}), self._applied[partition]

    def writes(self, partition: int, now: float,
               state_of: Callable[[str], bytes | None]) -> list[tuple[bytes, bytes]]:
        """The table writes of a checkpoint of ``partition``, in the order to make them:
        each changed service's state (``state_of``; None: no longer held), then the
        partition's applied offset. The partition counts as clean afterwards."""
        services, offset = self.take(partition, now)
        out = []
        for service, through in services.items():
            state = state_of(service)
            if state is None:
                continue
            events, forwarded = self._through.get(service, (through, None))
            value = (pack(through, state) if forwarded is None
                     else pack(-1 if events is None else events, state, forwarded))
            out.append((service.encode(), value))
        out.append((applied_offset_key(partition), str(offset).encode()))
        return out

    def forget(self) -> None:
        """After a rebalance: what was not checkpointed is read again from Kafka."""
        self._dirty.clear()
        self._applied.clear()
        self._since.clear()
        self._through.clear()
