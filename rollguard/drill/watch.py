"""What a drill sees while it runs: the audit and commands topics (the decision, the command,
the flip), a PointerReader of its service (the switch), and the notifier's /metrics (the
delivery). Each sighting is recorded, on the drill's own clock, as an observation of its hop
(:mod:`rollguard.drill.timeline`); the runner waits on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer
from prometheus_client.parser import text_string_to_metric_families

from rollguard.actions.state import PointerState
from rollguard.base.redact import redact
from rollguard.drill.timeline import AFTER, Failed, Hop, Observation, Seen, Skipped
from rollguard.drill.traffic import Plan

POLL_S = 0.2  # how often the notifier's /metrics is read
NOTICE_GAUGE = "rollguard_notify_drill_notice_timestamp_seconds"
FAILURES = "rollguard_notify_failures"


class Watch:
    """The observations of one drill, and what they are matched by."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.plan: Plan | None = None
        self.observed: dict[Hop, Observation] = {}
        self.changed = asyncio.Event()
        self.promoted_epoch: int | None = None
        self.command_id = ""
        self.decided_at: float | None = None  # the decision record's time (the worker's clock)
        self.notify_problem = ""  # why the notifier's delivery is not seen yet
        self._commands: dict[str, float] = {}  # command ids of the service seen -> when

    def see(self, hop: Hop, observation: Observation) -> None:
        """Record ``hop``'s observation (the first one counts)."""
        if hop not in self.observed:
            self.observed[hop] = observation
            self.changed.set()

    def fail_first(self, why: str) -> None:
        """The drill cannot go on: its first hop not observed yet failed, for ``why``
        (unless a hop has failed already, saying why)."""
        if any(isinstance(o, Failed) for o in self.observed.values()):
            return
        hop = next((h for h in Hop if h not in self.observed), None)
        if hop is not None:
            self.see(hop, Failed(why))

    def seen_at(self, hop: Hop | None) -> float | None:
        """When ``hop`` was seen (None: not seen; 0 for the drill's start)."""
        if hop is None:
            return 0.0
        found = self.observed.get(hop)
        return found.at if isinstance(found, Seen) else None

    async def wait_for(self, hop: Hop, until: float) -> bool:
        """Wait until ``hop`` is observed or the drill's clock reaches ``until``."""
        while hop not in self.observed:
            left = until - self.clock()
            if left <= 0:
                return False
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)
        return True

    def deadline(self, hop: Hop, patience: float) -> float | None:
        """Until when the drill waits for ``hop``: ``patience`` after the hop it follows
        was seen (None: that one was not, so ``hop`` cannot come)."""
        since = self.seen_at(AFTER[hop])
        return None if since is None else since + patience

    # -- the audit and commands topics ----------------------------------------------------

    def on_audit(self, record: dict[str, Any]) -> None:
        plan = self.plan
        if plan is None or record.get("service") != plan.service:
            return
        kind, command_id = record.get("type"), str(record.get("command_id") or "")
        if (kind in ("decision", "rollback-suppressed") and record.get("action") == "rollback"
                and record.get("release") == plan.candidate):
            self._decided(plan, record, kind == "rollback-suppressed")
        elif kind == "approval-needed" and command_id == self.command_id:
            self.see(Hop.FLIP, Failed("the rollback waits for a person's approval: the "
                                      "drill's metric needs a rule whose action is rollback"))
        elif kind == "outcome" and command_id and command_id == self.command_id:
            status = record.get("status")
            if status in ("applied", "already_applied"):
                self.see(Hop.FLIP, Seen(self.clock(), f"epoch {record.get('epoch_before')} "
                                                      f"→ {record.get('epoch_after')}"))
            else:
                self.see(Hop.FLIP, Failed(f"the rollback was {status} ({record.get('code')}): "
                                          f"{record.get('message')}"))

    def _decided(self, plan: Plan, record: dict[str, Any], suppressed: bool) -> None:
        ts = record.get("ts")
        event_s = float(ts) - plan.canary_at if isinstance(ts, int | float) else None
        note = (f"after {event_s:.0f} s of event time (policy explain expects at most "
                f"{plan.expected_s:.0f} s)" if event_s is not None else "")
        self.see(Hop.DECISION, Seen(self.clock(), note, event_s=event_s))
        at = record.get("at")
        self.decided_at = float(at) if isinstance(at, int | float) else time.time()
        if suppressed:
            self.see(Hop.COMMAND, Failed(f"the rollback was not carried out: {record.get('why')}"))
            return
        self.command_id = str(record.get("command_id") or "")
        if self.command_id in self._commands:
            self.see(Hop.COMMAND, Seen(self._commands[self.command_id],
                                       f"command {self.command_id[:8]}"))

    def on_command(self, message: dict[str, Any]) -> None:
        body = message.get("command")
        if self.plan is None or not isinstance(body, dict):
            return
        if body.get("service") == self.plan.service and body.get("command_id"):
            command_id = str(body["command_id"])
            self._commands[command_id] = self.clock()
            if command_id == self.command_id:
                self.see(Hop.COMMAND, Seen(self.clock(), f"command {command_id[:8]}"))

    # -- the serving side -----------------------------------------------------------------

    def on_pointer(self, state: PointerState) -> None:
        """A PointerReader of the drill service saw ``state``."""
        plan, promoted = self.plan, self.promoted_epoch
        if plan is None or promoted is None or state.epoch <= promoted:
            return
        if state.candidate != plan.candidate:
            self.see(Hop.READER, Seen(self.clock(), f"serves {state.active} alone "
                                                    f"(epoch {state.epoch})"))

    def on_notifier(self, text: str) -> None:
        """The notifier's /metrics: delivered once every destination that takes drills
        has delivered a notice of this drill's decision or later."""
        delivered: dict[str, float] = {}
        failures: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                where = sample.labels.get("destination", "")
                if sample.name == NOTICE_GAUGE:
                    delivered[where] = sample.value
                elif sample.name == f"{FAILURES}_total":
                    failures[where] = sample.value
        if not delivered:
            self.see(Hop.NOTIFY, Skipped("the notifier has no destination that takes drills "
                                         "(a drill never pages: PagerDuty is left out)"))
            return
        decided = self.decided_at
        late = sorted(d for d, at in delivered.items() if decided is None or at < decided)
        if not late:
            self.see(Hop.NOTIFY, Seen(self.clock(), f"to {', '.join(sorted(delivered))}"))
            return
        self.notify_problem = "not delivered to " + ", ".join(
            f"{d} ({failures.get(d, 0):.0f} failed attempts so far)" for d in late)


async def follow_topics(into: AIOKafkaConsumer, commands_topic: str, watch: Watch) -> None:
    """Hand every record of the audit and commands topics to the watch, for ever."""
    while True:
        for tp, batch in (await into.getmany(timeout_ms=100)).items():
            for message in batch:
                try:
                    record = orjson.loads(message.value or b"")
                except orjson.JSONDecodeError:
                    continue
                if not isinstance(record, dict):
                    continue
                if tp.topic == commands_topic:
                    watch.on_command(record)
                else:
                    watch.on_audit(record)


async def follow_notifier(url: str, watch: Watch) -> None:
    """Read the notifier's /metrics every :data:`POLL_S` once the flip was seen, until the
    delivery is (or the notifier says it takes no drills)."""
    async with aiohttp.ClientSession() as session:
        while Hop.NOTIFY not in watch.observed:
            await asyncio.sleep(POLL_S)
            if watch.seen_at(Hop.FLIP) is None:
                continue
            try:
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as reply:
                    reply.raise_for_status()
                    text = await reply.text()
            except (aiohttp.ClientError, TimeoutError) as exc:
                watch.notify_problem = (f"the notifier's /metrics at {redact(url)} does not "
                                        f"answer ({type(exc).__name__})")
                continue
            watch.on_notifier(text)
