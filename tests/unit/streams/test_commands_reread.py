"""The actuator reads again the commands Faust dropped around a rebalance, also when its
group has committed none yet (a new deployment's first rollback)."""

from __future__ import annotations

import pytest

from rollguard.streams.commanding import last_carried_out
from rollguard.streams.gaps import GapGuard


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
