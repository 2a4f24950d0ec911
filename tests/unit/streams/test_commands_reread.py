"""The actuator reads again the commands Faust dropped around a rebalance — the last ones, or
ones a later command reveals — also when its group has committed none yet (a new
deployment's first rollback), and carries out each once, in order, committing none early;
commands deleted before the group read them are a gap taken at once."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, cast

import faust
import orjson
import pytest
from faust.types import TP

from rollguard.actions.actuator import Actuator
from rollguard.actions.approvals import PendingCommands
from rollguard.actions.commands import new_command, sign
from rollguard.actions.pointer import PointerStore
from rollguard.actions.pointer_cache import PointerCache
from rollguard.streams.commanding import Commanding, last_carried_out
from rollguard.streams.gaps import GapGuard
from rollguard.streams.metrics import WorkerMetrics
from tests.support.fakes import FakeStore, FakeTopic, Log

SECRET = b"commands-reread"
T = 1_800_000_000.0
TOPIC = "rollguard.commands"


@pytest.mark.parametrize(("done", "committed", "last"), [
    (7, 3, 7),  # this process carried out offset 7: its own record wins
    (None, 3, 2),  # none here yet: the group committed up to (not including) offset 3
    (None, None, -1),  # nothing committed by the group: every command is still due
])
def test_the_last_command_carried_out_is_this_process_s_else_the_group_s(
        done: int | None, committed: int | None, last: int) -> None:
    assert last_carried_out(done, committed) == last


def test_a_command_dropped_before_the_group_committed_anything_is_read_from_the_start() -> None:
    """One command (offset 0) waits; nothing reveals the gap but the stall: after
    ``stall_s`` without progress the actuator seeks back to offset 0."""
    guard = GapGuard(stall_s=3.0)
    done = last_carried_out(None, None)
    assert guard.stalled(0, done, 1, now=0.0) is None
    assert guard.stalled(0, done, 1, now=3.5) == 0
    assert guard.stalled(0, 0, 1, now=9.0) is None, "carried out: nothing waits"


# --- the re-read itself: Commanding driven with a fake commands partition and a fake clock


@dataclass
class FakeMessage:
    offset: int
    timestamp: float = 0.0
    timestamp_type: int = 0


@dataclass
class FakeEvent:
    message: FakeMessage
    key: bytes | None
    value: bytes


@dataclass
class CommandsPartition:
    """The commands topic's one partition as Faust reads it: the messages in the log, the
    position the next fetch starts at (the group's committed offset after an assignment),
    and the offsets Faust drops the first time it fetches them (faust-streaming #596).
    ``start`` is the log start offset (the commands before it were deleted: a fetch below it
    starts there, as the consumer's ``auto_offset_reset`` earliest does); ``ahead``
    messages fetched before a seek still arrive after it. It is the app's consumer and the
    actuator agent's stream at once, and commits what is acknowledged as Faust does
    (``commits``), checking each time that every command below is carried out."""

    values: list[bytes]
    committed: int | None
    dropped: set[int]
    start: int = 0
    ahead: int = 0
    rebalancing: bool = False
    sought: list[int] = field(default_factory=list)
    commits: list[int] = field(default_factory=list)
    carried_out: Callable[[], list[int]] = list  # the offsets carried out so far

    def __post_init__(self) -> None:
        self.position = max(self.committed or 0, self.start)
        self._committed_offset = {TP(TOPIC, 0): self.committed}
        self._seek: int | None = None
        self._stale = 0
        self._acked: set[int] = set()

    @property
    def consumer(self) -> CommandsPartition:
        return self

    def assignment(self) -> set[TP]:
        return {TP(TOPIC, 0)}

    def highwater(self, tp: TP) -> int:
        return len(self.values)

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return dict.fromkeys(tps, self.start)

    async def seek(self, tp: TP, offset: int) -> None:
        assert tp == TP(TOPIC, 0)
        self.sought.append(offset)
        self._seek, self._stale = offset, self.ahead

    async def seek_wait(self, partitions: Any) -> None:  # the worker seeks in Faust's thread
        for tp, offset in partitions.items():
            await self.seek(tp, offset)

    def noack(self) -> CommandsPartition:
        return self

    async def events(self) -> AsyncIterator[FakeEvent]:
        """What was fetched since the last call, less what Faust dropped."""
        while True:
            if self._seek is not None and (not self._stale or self.position >= len(self.values)):
                self.position, self._seek = max(self._seek, self.start), None
            if self.position >= len(self.values):
                return
            offset, self.position = self.position, self.position + 1
            self._stale -= self._seek is not None
            if offset in self.dropped:
                self.dropped.discard(offset)
                continue
            yield FakeEvent(FakeMessage(offset), b"chat", self.values[offset])

    async def ack(self, event: FakeEvent) -> None:
        """Faust's rule: the first run of acknowledged offsets from the committed one, or
        from the one after it (it commits over one missing offset; over any with none
        committed yet)."""
        committed = self.commits[-1] if self.commits else self.committed
        if committed is None or event.message.offset >= committed:
            self._acked.add(event.message.offset)
        acked = sorted(self._acked)
        if not acked or (committed and acked[0] - committed > 1):
            return
        end = acked[0]
        while end + 1 in self._acked:
            end += 1
        self._acked -= set(range(acked[0], end + 1))
        self.commits.append(end + 1)
        below = set(range(max(self.committed or 0, self.start), end + 1))
        assert below <= set(self.carried_out()), f"offset {end + 1} committed too early"


def signed_commands(count: int) -> tuple[list[bytes], list[str]]:
    """``count`` signed rollback commands as the monitor sends them, and their ids."""
    values, ids = [], []
    for i in range(count):
        command = sign(new_command(f"svc-{i}", "rollback", "rule:x", T, ttl_s=300.0), SECRET)
        values.append(orjson.dumps({"type": "command",
                                    "command": orjson.loads(command.to_bytes())}))
        ids.append(command.command_id)
    return values, ids


def new_commanding(partition: CommandsPartition, clock: list[float],
                   ) -> tuple[Commanding, FakeStore]:
    """The real commands side over ``partition``, on a fake store and clock; the partition
    checks its commits against the commands carried out."""
    store = FakeStore()
    actuator = Actuator(cast(PointerStore, store), cast(PendingCommands, None), SECRET,
                        clock=lambda: T)
    log: Log = []
    commanding = Commanding(cast(faust.App, partition), cast(faust.TopicT, FakeTopic(TOPIC, log)),
                            actuator, PointerCache(cast(PointerStore, store)), WorkerMetrics(),
                            cast(faust.TopicT, FakeTopic("alerts", log)),
                            cast(faust.TopicT, FakeTopic("audit", log)),
                            monotonic=lambda: clock[0])
    ids = [orjson.loads(v)["command"]["command_id"] for v in partition.values]
    partition.carried_out = lambda: [ids.index(i) for kind, i in store.calls if kind == "apply"]
    return commanding, store


async def run(partition: CommandsPartition, seconds: float) -> Commanding:
    """The actuator agent reading ``partition`` and its timer every ``retry_s`` (as in the
    app), for ``seconds`` of the fake clock."""
    clock = [0.0]
    commanding, _ = new_commanding(partition, clock)
    while clock[0] <= seconds:
        await commanding.read(cast(faust.StreamT[bytes], partition))
        await commanding.reread(clock[0])
        clock[0] += GapGuard.retry_s
    return commanding


@pytest.mark.parametrize(("committed", "count", "dropped", "ahead", "sought"), [
    # a new group's first rollback, sent while its first workers rebalance
    (None, 1, {0}, 0, [0]),
    # a restart: the two commands after the committed offset were dropped
    (3, 5, {3, 4}, 0, [3]),
    # this process carried out 0..2; the last command was dropped
    (None, 4, {3}, 0, [3]),
    # command 3 dropped, command 4 delivered: 4 reveals the hole
    (None, 5, {3}, 0, [3]),
    # ... and two commands fetched before the seek back still arrive after it
    (None, 8, {3}, 2, [3]),
    # two holes after a restart, the second one dropped when read again
    (2, 9, {3, 6}, 0, [3, 6]),
])
async def test_commands_faust_dropped_are_read_again_and_carried_out_once(
        committed: int | None, count: int, dropped: set[int], ahead: int,
        sought: list[int]) -> None:
    """A command after missing ones makes the actuator seek back to the first of them; when
    the last ones are missing, the timer finds that commands wait beyond the last one
    carried out with none arriving and seeks back once the stall lasted ``stall_s``. Each
    command is then carried out exactly once, in order, and nothing is committed before the
    commands below it are carried out. Without the seek back they would wait for the next
    restart, or for ever once the committed offset passed them."""
    values, _ = signed_commands(count)
    partition = CommandsPartition(values, committed, set(dropped), ahead=ahead)
    commanding = await run(partition, 3 * GapGuard.stall_s)
    assert partition.carried_out() == list(range(committed or 0, count))
    assert partition.sought == sought, "one seek per hole, to its first command"
    assert partition.commits[-1] == count, "all committed in the end"
    assert commanding.guard.accepted_gaps == 0


async def test_commands_deleted_before_a_new_group_reads_are_a_gap_taken_at_once(
        caplog: pytest.LogCaptureFixture) -> None:
    """A new group expects offset 0; the log starts at 2 (retention deleted 0 and 1). The
    seek to 0 brings offset 2 again; the first retry learns the log start, takes 0..1 as
    absent (one warning naming them, counted by topic) and reads on from 2."""
    values, _ = signed_commands(5)
    partition = CommandsPartition(values, None, set(), start=2)
    with caplog.at_level(logging.WARNING, logger="rollguard.streams.gaps"):
        commanding = await run(partition, 2 * GapGuard.retry_s)
    assert partition.carried_out() == [2, 3, 4]
    assert partition.sought == [0, 2]
    assert commanding.guard.accepted == {TOPIC: 1}
    [warning] = [r for r in caplog.records if r.name == "rollguard.streams.gaps"]
    assert warning.getMessage() == (
        f"gap guard: topic '{TOPIC}' partition 0: offsets 0..1 taken as absent (below the "
        "partition's log start offset 2: deleted); reading goes on at offset 2")
