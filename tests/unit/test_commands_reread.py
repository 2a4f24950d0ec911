"""The actuator reads again the commands Faust dropped around a rebalance, also when its
group has committed none yet (a new deployment's first rollback)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import cast

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
    It is the app's consumer and the actuator agent's stream at once."""

    values: list[bytes]
    committed: int | None
    dropped: set[int]
    rebalancing: bool = False
    sought: list[int] = field(default_factory=list)
    position: int = 0

    def __post_init__(self) -> None:
        self.position = self.committed or 0
        self._committed_offset = {TP(TOPIC, 0): self.committed}

    @property
    def consumer(self) -> CommandsPartition:
        return self

    def assignment(self) -> set[TP]:
        return {TP(TOPIC, 0)}

    def highwater(self, tp: TP) -> int:
        return len(self.values)

    async def seek(self, tp: TP, offset: int) -> None:
        assert tp == TP(TOPIC, 0)
        self.sought.append(offset)
        self.position = offset

    async def events(self) -> AsyncIterator[FakeEvent]:
        """What was fetched since the last call, less what Faust dropped."""
        while self.position < len(self.values):
            offset, self.position = self.position, self.position + 1
            if offset in self.dropped:
                self.dropped.discard(offset)
                continue
            yield FakeEvent(FakeMessage(offset), b"chat", self.values[offset])


def signed_commands(count: int) -> tuple[list[bytes], list[str]]:
    """``count`` signed rollback commands as the monitor sends them, and their ids."""
    values, ids = [], []
    for i in range(count):
        command = sign(new_command(f"svc-{i}", "rollback", "rule:x", T, ttl_s=300.0), SECRET)
        values.append(orjson.dumps({"type": "command",
                                    "command": orjson.loads(command.to_bytes())}))
        ids.append(command.command_id)
    return values, ids


def new_commanding(partition: CommandsPartition) -> tuple[Commanding, FakeStore]:
    store = FakeStore()
    actuator = Actuator(cast(PointerStore, store), cast(PendingCommands, None), SECRET,
                        clock=lambda: T)
    log: Log = []
    commanding = Commanding(cast(faust.App, partition), cast(faust.TopicT, FakeTopic(TOPIC, log)),
                            actuator, PointerCache(cast(PointerStore, store)), WorkerMetrics(),
                            cast(faust.TopicT, FakeTopic("alerts", log)),
                            cast(faust.TopicT, FakeTopic("audit", log)))
    return commanding, store


@pytest.mark.parametrize(("committed", "count", "dropped"), [
    (None, 1, {0}),  # a new group's first rollback, sent while its first workers rebalance
    (3, 5, {3, 4}),  # a restart: the two commands after the committed offset were dropped
    (None, 4, {3}),  # this process carried out 0..2; the last command was dropped
])
async def test_commands_faust_dropped_are_read_again_and_carried_out_once(
        committed: int | None, count: int, dropped: set[int]) -> None:
    """The actuator agent reads the partition; the timer (every ``retry_s``, as in the app)
    finds that commands wait beyond the last one carried out with none arriving, and seeks
    back to the first of them once the stall lasted ``stall_s``: each command is then
    carried out exactly once. Without the seek back they would wait for the next restart."""
    values, ids = signed_commands(count)
    partition = CommandsPartition(values, committed, set(dropped))
    commanding, store = new_commanding(partition)
    now, retry_s = 0.0, GapGuard.retry_s
    while now <= 3 * commanding.guard.stall_s:
        await commanding.read(cast(faust.StreamT[bytes], partition))
        await commanding.reread_stalled(now)
        now += retry_s
    assert [i for kind, i in store.calls if kind == "apply"] == ids[committed or 0:]
    assert partition.sought == [min(dropped)], "one seek, to the first command dropped"
