"""Shared streams and policies for the detector tests (generated once per session), and a
recording replayed line by line or in batches."""

from __future__ import annotations

import contextlib
from functools import lru_cache
from typing import Any

from bench.scenarios import Scenario, dirty, to_lines
from rollguard.analysis.replay import Replay
from rollguard.base.errors import InvalidEvent
from rollguard.detectors.events import Event, parse_event
from rollguard.detectors.policy import Policy, default_policy, policy_from_dict
from tests.support.policies import default_policy_document


def valid_events(lines: list[bytes]) -> list[Event]:
    events = []
    for line in lines:
        with contextlib.suppress(InvalidEvent):
            events.append(parse_event(line))
    return events


@lru_cache(maxsize=8)
def busy_stream(seed: int) -> tuple[Event, ...]:
    """25 minutes of a canary with a blip and a sustained regression, dirty: duplicates,
    events out of order and junk lines (junk removed here)."""
    scenario = Scenario(seed, metric="latency_ms", magnitude=3.0, onset=300, duration=1500)
    return tuple(valid_events(dirty(to_lines(scenario.events()), seed)))


@lru_cache(maxsize=1)
def dry_run_policy() -> Policy:
    """The default policy with every action a dry run, so that decisions keep coming."""
    raw = default_policy_document()
    for rule in raw["metrics"].values():
        rule["action"] = "dry-run"
    for composite in raw["composites"]:
        composite["action"] = "dry-run"
    return policy_from_dict(raw)


def replay_lines(lines: list[bytes], batched: bool) -> tuple[Any, ...]:
    # A recorder makes the replay take every line one by one.
    replay = Replay(dry_run_policy(), on_event=None if batched else (lambda event: None))
    replay.feed_lines(lines)
    summary = replay.finish()
    return ([d.to_dict() for d in replay.decisions], summary.lines(),
            [m.service for m in replay.monitors], [m.to_bytes() for m in replay.monitors])


# No shrinking: each example replays ~37,000 lines twice, and shrinking would take minutes.


__all__ = ["busy_stream", "default_policy", "dry_run_policy", "replay_lines", "valid_events"]
