"""A service's two clocks: its fast metrics, and the evaluation results judges send late.

Judges score an output seconds to many minutes after it was served, often in batches, while
a service's own events and its GenAI spans come at once. On one clock the spans would move
the service's time ahead and the evaluations of the same outputs would all be too late. So
the metrics an evaluator feeds (the policy's ``opentelemetry.evaluation_metrics``) are
judged in a *lane* of their own: a second monitor of the same service with its own buckets,
its own newest bucket and its own lateness bound (``evaluation_lateness_seconds``). The
fast metrics decide at their pace; evaluation metrics are judged in their outputs' time.

Which lane an event goes to is a matter of what it carries: an event whose every metric is
an evaluation metric is an evaluation result (an OpenTelemetry ``gen_ai.evaluation.result``,
or a judge's verdict sent later as an event of its own) and is judged in the evaluation
lane; an event with any other metric (a span, an event sent as the output is served) is
judged at once, all of it, in the fast lane. A service that sends an evaluation metric both
ways has it judged in each lane on the values sent that way; one that sends every metric in
its own events at once has one lane, as if there were no other.

>>> from rollguard.detectors.events import Event
>>> slow = frozenset({"hallucination"})
>>> is_evaluation(Event("a", 10.0, "chat", "v1", "", {"hallucination": 0.0}), slow)
True
>>> is_evaluation(Event("b", 10.0, "chat", "v1", "", {"latency_ms": 8.0, "hallucination": 0.0}),
...               slow)
False
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import replace

from rollguard.detectors.blocks import Block
from rollguard.detectors.decision import Decision
from rollguard.detectors.dedupe import DEDUPE_CAP
from rollguard.detectors.events import Event
from rollguard.detectors.intake import EventIntake
from rollguard.detectors.policy import Policy

Part = tuple[Block, list[int] | None]  # a block of some of the events, and their indices
_observe = EventIntake.observe  # (called straight: an event's path is its cost)


def lane_policy(policy: Policy) -> Policy:
    """The policy of the evaluation lane: the same rules, the evaluations' lateness bound."""
    return replace(policy, max_lateness_seconds=policy.opentelemetry.evaluation_lateness_seconds)


def is_evaluation(event: Event, slow: frozenset[str]) -> bool:
    """Whether ``event`` is an evaluation result: it has metrics, all of them in ``slow``."""
    return bool(event.metrics) and slow.issuperset(event.metrics)


def split_block(block: Block, slow: frozenset[str]) -> tuple[Part | None, Part | None]:
    """A block's events for the fast lane and its evaluation results (each part with the
    indices of its events in ``block``, None: all of them, in order)."""
    columns = block.columns
    fast_names = [n for n in columns if n not in slow]
    if any(n in block.gapless for n in fast_names):
        return (block, None), None  # every event has a fast metric
    slow_names = [n for n in columns if n in slow]
    if not fast_names and (any(n in block.gapless for n in slow_names) or (None,) * len(
            slow_names) not in zip(*(columns[n] for n in slow_names), strict=True)):
        return None, (block, None)  # every event is an evaluation result (has a metric)
    evaluations = [i for i in range(len(block))
                   if all(columns[n][i] is None for n in fast_names)
                   and any(columns[n][i] is not None for n in slow_names)]
    if not evaluations:
        return (block, None), None
    if len(evaluations) == len(block):
        return None, (block, None)
    taken = set(evaluations)
    fast = [i for i in range(len(block)) if i not in taken]
    return _part(block, list(columns), fast), _part(block, slow_names, evaluations)


def _part(block: Block, names: list[str], rows: list[int]) -> Part | None:
    if not rows:
        return None
    columns = {n: [block.columns[n][i] for i in rows] for n in names}
    dense = {n: [float(v) for v in column if v is not None] for n, column in columns.items()}
    part = Block(block.service, block.release, block.cohort,
                 [block.event_ids[i] for i in rows], [block.ts[i] for i in rows], columns,
                 dense, frozenset(n for n, values in dense.items() if len(values) == len(rows)))
    return part, rows


class LanedIntake(EventIntake):
    """An intake that sends the values of evaluation metrics to a lane of their own (a
    monitor of the same service, made by :meth:`_open_lane` on the first such value).

    ``too_late`` names the events of the last calls too late in either lane;
    ``too_late_evaluations`` those of them too late in the evaluation lane.
    """

    def __init__(self, policy: Policy, *, dedupe_cap: int = DEDUPE_CAP):
        super().__init__(policy, dedupe_cap=dedupe_cap)
        self.slow = frozenset(policy.opentelemetry.evaluation_metrics)
        self.evaluations: LanedIntake | None = None
        self.too_late_evaluations: set[int] = set()

    @abstractmethod
    def _open_lane(self) -> LanedIntake:
        """A new evaluation lane of this service (whose own ``slow`` is empty)."""

    @abstractmethod
    def _lane_fed(self, lane: LanedIntake) -> None:
        """The lane was fed: what the two lanes share is brought in step."""

    def observe(self, event: Event) -> list[Decision]:
        metrics = event.metrics
        if not self.slow or not metrics or not metrics.keys() <= self.slow:  # is_evaluation
            return _observe(self, event)
        return self._in_lane(lambda lane: lane.observe(event), None)

    def observe_block(self, block: Block) -> list[Decision]:
        slow = self.slow
        if not slow or slow.isdisjoint(block.columns):
            return super().observe_block(block)
        fast, later = split_block(block, slow)
        decisions: list[Decision] = []
        if fast is not None:
            before = len(self.too_late)
            decisions += super().observe_block(fast[0])
            rows = fast[1]
            if rows is not None and len(self.too_late) > before:
                self.too_late[before:] = [rows[i] for i in self.too_late[before:]]
        if later is not None:
            part, rows = later
            decisions += self._in_lane(lambda lane: lane.observe_block(part), rows)
        return decisions

    def observe_interleaved(self, blocks: Sequence[Block],
                            event_ids: list[str]) -> list[Decision] | None:
        slow = self.slow
        if slow and any(split_block(b, slow)[1] is not None for b in blocks
                        if not slow.isdisjoint(b.columns)):
            return None  # the caller takes them one by one, each to its lane
        return super().observe_interleaved(blocks, event_ids)

    def _in_lane(self, feed: Callable[[LanedIntake], list[Decision]],
                 rows: list[int] | None) -> list[Decision]:
        # Feed the evaluation lane; its events too late are named as the caller's.
        lane = self.evaluations
        if lane is None:
            lane = self.evaluations = self._open_lane()
        decisions = feed(lane)
        if lane.too_late:
            late = [rows[i] if rows is not None else i for i in lane.too_late]
            lane.too_late = []
            self.too_late_evaluations.update(late)
            self.too_late.extend(i for i in dict.fromkeys(late) if i not in self.too_late)
        self._lane_fed(lane)
        return decisions
