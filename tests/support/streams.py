"""Shared streams and policies for the detector tests (generated once per session)."""

from __future__ import annotations

import contextlib
from functools import lru_cache

from bench.scenarios import Scenario, dirty, to_lines
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


__all__ = ["busy_stream", "default_policy", "dry_run_policy", "valid_events"]
