"""The version pointer of one service, and its JSON encoding (the value under ``...:pointer``)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import orjson

# Bumped if the JSON layout ever changes incompatibly; readers refuse versions they do not know.
FORMAT = 1


def to_resolution(percent: float) -> float:
    """``percent`` at the protocol's 0.01 % resolution, as the writer stores it: the decimal
    number as written, rounded half away from zero to two places. A stored share is then a
    whole number of basis points, and ``round(percent * 100)`` gives that number in every
    language, whatever its rounding of halves.

    >>> to_resolution(12.345), to_resolution(12.344), to_resolution(0.005), to_resolution(50)
    (12.35, 12.34, 0.01, 50.0)
    """
    return float(Decimal(repr(float(percent))).quantize(Decimal("0.01"), ROUND_HALF_UP))


@dataclass(frozen=True)
class PointerState:
    """Which release serves a service, and which one serves a staged share of its traffic.

    ``active`` serves every request not routed to ``candidate``; ``candidate`` (when set) serves
    ``percent`` % of request keys and every request of the listed ``cohorts``. Each release's
    component versions travel with the pointer, so a reader never needs a second read.

    >>> s = PointerState("bot", active="v2", stable="v1", epoch=3,
    ...                  active_components={"model": "m2"})
    >>> s.watched_release
    'v2'
    >>> decode(encode(s)) == s
    True
    """

    service: str
    active: str
    stable: str
    epoch: int
    active_components: dict[str, str]
    candidate: str | None = None
    candidate_components: dict[str, str] | None = None
    percent: float = 0.0
    cohorts: tuple[str, ...] = ()
    pinned: bool = False
    updated_at: float = 0.0
    updated_by: str = ""
    command_id: str = ""
    watched_since: int = 0  # the epoch at which the watched release became watched
    # A guarded rollout under way: the plan a person signed and where it stands
    # (actions/rollout.py); written only while one is, so other pointers encode as before.
    rollout: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def watched_release(self) -> str | None:
        """The release the monitor should judge against ``stable``, or None if nothing is new."""
        if self.candidate is not None:
            return self.candidate
        if self.active != self.stable:
            return self.active
        return None

    def with_changes(self, **changes: Any) -> PointerState:
        return replace(self, **changes)


def encode(state: PointerState) -> bytes:
    """Canonical JSON of the pointer (sorted keys, no spaces)."""
    data: dict[str, Any] = {
        "format": FORMAT,
        "service": state.service,
        "epoch": state.epoch,
        "active": state.active,
        "active_components": state.active_components,
        "stable": state.stable,
        "candidate": state.candidate,
        "candidate_components": state.candidate_components,
        "percent": float(state.percent),
        "cohorts": list(state.cohorts),
        "pinned": state.pinned,
        "updated_at": state.updated_at,
        "updated_by": state.updated_by,
        "command_id": state.command_id,
        "watched_since": state.watched_since,
    }
    if state.rollout is not None:
        data["rollout"] = state.rollout
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


_new_state = object.__new__
KNOWN = frozenset({"format"} | {f.name for f in fields(PointerState)} - {"extra"})


def decode(raw: bytes | str) -> PointerState:
    """Parse the pointer JSON; unknown fields (from newer writers) are kept in ``extra``.

    >>> decode(b'{"format": 2}')
    Traceback (most recent call last):
    ...
    ValueError: pointer format 2 is newer than this reader understands (1)
    """
    data = orjson.loads(raw)
    get = data.get
    if get("format", FORMAT) > FORMAT:
        raise ValueError(
            f"pointer format {data['format']} is newer than this reader understands ({FORMAT})"
        )
    unknown = data.keys() - KNOWN
    # Filled in directly: the frozen dataclass's __init__ sets each field through
    # object.__setattr__, which was a third of the decode time of every pointer change.
    state = _new_state(PointerState)
    state.__dict__.update(
        service=data["service"],
        active=data["active"],
        stable=data["stable"],
        epoch=int(data["epoch"]),
        active_components=dict(data["active_components"]),
        candidate=get("candidate"),
        candidate_components=get("candidate_components"),
        percent=float(get("percent", 0.0)),
        cohorts=tuple(get("cohorts", ())),
        pinned=bool(get("pinned", False)),
        updated_at=float(get("updated_at", 0.0)),
        updated_by=get("updated_by", ""),
        command_id=get("command_id", ""),
        watched_since=int(get("watched_since", 0)),
        rollout=get("rollout"),
        extra={k: data[k] for k in unknown} if unknown else {},
    )
    return state
