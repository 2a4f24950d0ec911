"""The worker's timers leave the partitions alone while Faust rebalances: it has paused them
(so they look stalled), recovers the table, and seeks them to their committed offsets itself."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from rollguard.streams.otlp.edge import OtlpEdge
from rollguard.streams.worker import Worker


class Untouchable:
    """A loop that fails the test when the timer uses it."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the timer used loop.{name}")


def idle_worker(rebalancing: bool) -> Worker:
    worker = Worker.__new__(Worker)
    worker.edge = SimpleNamespace(app=SimpleNamespace(rebalancing=rebalancing))  # type: ignore[assignment]
    worker.loop = Untouchable()  # type: ignore[assignment]
    return worker


def idle_otlp_edge(rebalancing: bool) -> OtlpEdge:
    edge = OtlpEdge.__new__(OtlpEdge)
    edge.app = SimpleNamespace(rebalancing=rebalancing)  # type: ignore[assignment]
    edge.loop = Untouchable()  # type: ignore[assignment]
    return edge


async def test_the_monitor_timer_neither_checkpoints_nor_seeks_while_faust_rebalances() -> None:
    await idle_worker(rebalancing=True).checkpoint_idle()
    with pytest.raises(AssertionError, match="loop"):  # and it does once the rebalance ended
        await idle_worker(rebalancing=False).checkpoint_idle()


async def test_the_otlp_timer_does_not_seek_while_faust_rebalances() -> None:
    await idle_otlp_edge(rebalancing=True).expire()
    with pytest.raises(AssertionError, match="loop"):
        await idle_otlp_edge(rebalancing=False).expire()
