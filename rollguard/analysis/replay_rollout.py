"""A guarded rollout in a replay (``rollguard replay --rollout RELEASE``): the ramp judged on
recorded events as the worker judges it.

Each service gets a pointer of its own in memory: its stable release (the first other
release its events name) serves alone until the rollout starts (``start``, event time; by
default just before the release's first event), when a person's ``rollout_start`` with the
policy's plan is applied to it. Every message then goes where the worker's partition loop
sends it (:class:`~rollguard.streams.partition.PartitionLoop`): the monitor, with the roles
the pointer gives; each decision's response (:func:`~rollguard.actions.respond.respond`);
the rollout's steering (:func:`~rollguard.actions.ramping.steer`) on the same pointer. The
commands they issue (a move to the next step, a rollback, marking the release stable) are
then planned on the pointer (:func:`~rollguard.actions.plan.plan`) as the actuator would,
at once (the worker reads its pointer again after any command it sends). What the replay
cannot do is change the recorded traffic: the events are the shares they were recorded at.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rollguard.actions.commands import Command, new_command, sign
from rollguard.actions.plan import plan
from rollguard.actions.planned import Change
from rollguard.actions.ramping import steer
from rollguard.actions.releases import Release
from rollguard.actions.respond import respond, roles_of
from rollguard.actions.state import PointerState
from rollguard.detectors.blocks import Block
from rollguard.detectors.events import Event
from rollguard.detectors.monitors import Fed, Item, MonitorSet
from rollguard.detectors.rollout_plan import RolloutPlan, plan_document

SECRET = b"replay"  # the replay's own commands are signed and checked with it, nothing else
TTL_S = 300.0
STARTED_BY = "replay"


@dataclass(frozen=True)
class RolloutSpec:
    """The rollout to replay: its ``release``, taken through ``plan`` from ``start`` (event
    time; None: the bucket of the release's first event)."""

    release: str
    plan: RolloutPlan = field(default_factory=RolloutPlan)
    start: float | None = None


def _first(items: list[Item]) -> Event | Block | None:
    return next((item for item, _, _ in items if item is not None), None)


def _latest(items: list[Item]) -> float | None:
    stamps = [t for item, _, _ in items if item is not None
              for t in (item.ts if isinstance(item, Block) else [item.ts])]
    return max(stamps) if stamps else None


class RolloutReplay:
    """Feed messages as the worker does for services under a guarded rollout; ``on_record``
    gets each ramp verdict that is news (the worker's audit record of it)."""

    def __init__(self, spec: RolloutSpec,
                 on_record: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.spec = spec
        self.pointers: dict[str, PointerState] = {}
        self.started: set[str] = set()
        self.records: list[dict[str, Any]] = []
        self.refused: list[str] = []
        self._on_record = on_record
        self._now = 0.0

    def feed(self, monitors: MonitorSet, items: list[Item]) -> Fed:
        """One message, as :meth:`PartitionLoop._handle` takes it."""
        first = _first(items)
        latest = _latest(items)
        if latest is not None:
            self._now = max(self._now, latest)
        pointer = self._pointer(first, items) if first is not None else None
        fed = monitors.feed(items, None, roles_of(pointer))
        commands = [c for d in fed.decisions
                    if isinstance(c := respond(d, pointer, self._now, SECRET, TTL_S), Command)]
        monitor = monitors.get(fed.service) if fed.service is not None else None
        idle = pointer is None or pointer.rollout is None
        if monitor is not None and not (idle and monitor.rollout is None
                                        and not monitor.measure_ramp):
            steered = steer(monitor, pointer, self._now, SECRET, TTL_S)
            for record in steered.records:
                self.records.append(record)
                if self._on_record is not None:
                    self._on_record(record)
            commands += steered.commands
        for command in commands:
            self._apply(command)
        return fed

    def _pointer(self, first: Event | Block, items: list[Item]) -> PointerState | None:
        """The service's pointer before a message whose first item is ``first``: made on
        its stable release's first event, the rollout started when its time has come."""
        service, release, spec = first.service, first.release, self.spec
        state = self.pointers.get(service)
        if state is None:
            if release == spec.release:
                return None  # no stable release seen: nothing to roll out from
            state = self.pointers[service] = PointerState(service, release, release, 1,
                                                              {"release": release})
        ts = first.ts[0] if isinstance(first, Block) else first.ts
        due = (any(item is not None and item.release == spec.release for item, _, _ in items)
               if spec.start is None else ts >= spec.start)
        if service not in self.started and due:
            self.started.add(service)
            go = new_command(service, "rollout_start", STARTED_BY, self._now, ttl_s=TTL_S,
                             release=spec.release,
                             evidence={"plan": plan_document(spec.plan)})
            self._apply(sign(go, SECRET))
        return self.pointers[service]

    def _apply(self, command: Command) -> None:
        state = self.pointers.get(command.service)
        if state is None:
            return
        # (components are not in the events: each release stands for itself)
        releases = {name: Release(name, {"release": name})
                    for name in (state.stable, self.spec.release)}
        planned = plan(state, command, releases, self._now)
        if isinstance(planned, Change):
            self.pointers[command.service] = planned.state
        else:
            self.refused.append(f"{command.service}: {command.op}: {planned.message}")
