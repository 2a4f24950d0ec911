"""A service's events by cohort: the open bucket's events of each (release, cohort), and the
stable release's decayed reference of each cohort (:mod:`detectors.cohorts` tests them).

A monitor keeps one only once an event with a cohort arrives; from then on every event is
counted here too (under "" when it has none), beside the release's aggregate. At most
``cap`` cohorts are kept (:func:`detectors.cohorts.slot_of`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from rollguard.detectors.accumulate import Bucket, carry, fold, summarise
from rollguard.detectors.cohorts import slot_of

# The open bucket's events of one release: metrics of single events, and values of blocks.
Pending = tuple[list[dict[str, float]], dict[str, list[float]]]
Slots = dict[str, tuple[int, float]]
Clips = dict[str, tuple[float, float]]


def sum_pending(how: Callable[..., Bucket], pending: Pending | None, slots: Slots, clips: Clips,
                carried: Bucket | None) -> Bucket:
    """summarise() or carry() of one release's open events, of both kinds."""
    events, columns = pending if pending is not None else ([], None)
    return how(events, slots, clips, carried, columns)


class Strata:
    """Open sums by (release, cohort) and the stable release's references by cohort."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.names: list[str] = []  # the cohorts tracked, in the order first seen
        self.open: dict[tuple[str, str], Pending] = {}
        self.carried: dict[tuple[str, str], Bucket] = {}
        self.refs: dict[str, Bucket] = {}  # cohort -> the stable release's decayed sums
        # (release, cohort as it came) -> its slot's pending events: one lookup per event
        self._lookup: dict[tuple[str, str], Pending] = {}

    @classmethod
    def starting(cls, cap: int, open_: Mapping[str, Pending],
                 carried: Mapping[str, Bucket]) -> Strata:
        """Strata holding a bucket's events so far (by release, ``open_`` and ``carried``)
        under cohort "": none of them had a cohort."""
        strata = cls(cap)
        for release, (events, columns) in open_.items():
            if events or columns:
                pending = strata.pending(release, "")
                pending[0].extend(events)
                pending[1].update({name: list(values) for name, values in columns.items()})
        for release, sums in carried.items():
            strata.carried[(release, slot_of(strata.names, "", cap))] = copy.deepcopy(sums)
        return strata

    def pending(self, release: str, cohort: str) -> Pending:
        """The open bucket's events of ``release`` in ``cohort``'s slot."""
        pending = self._lookup.get((release, cohort))
        if pending is None:
            key = (release, slot_of(self.names, cohort, self.cap))
            pending = self.open.get(key)
            if pending is None:
                pending = self.open[key] = ([], {})
            self._lookup[(release, cohort)] = pending
        return pending

    def close(self, stable: str | None, candidate: str | None, slots: Slots, clips: Clips,
              decay: float) -> dict[str, Bucket]:
        """Sum the closed bucket: fold the stable release's cohorts into their references;
        return the candidate's sums by cohort."""
        pending, self.open = self.open, {}
        carried, self.carried = self.carried, {}
        self._lookup = {}
        out: dict[str, Bucket] = {}
        for key in sorted({*pending, *carried}):
            release, cohort = key
            if release not in (stable, candidate):
                continue
            sums = sum_pending(summarise, pending.get(key), slots, clips, carried.get(key))
            if release == stable:
                fold(self.refs.setdefault(cohort, {}), sums, decay)
            elif sums:
                out[cohort] = sums
        return out

    def carry_open(self, slots: Slots, clips: Clips) -> None:
        """Fold the open events into exact partial sums (before the state is written)."""
        carried = self.carried
        self.carried = {key: sum_pending(carry, self.open.get(key), slots, clips,
                                         carried.get(key))
                        for key in sorted({*self.open, *carried})}
        self.open, self._lookup = {}, {}

    def to_plain(self) -> dict[str, Any]:
        keys = sorted(self.carried)
        return {"names": self.names, "refs": self.refs, "keys": [list(k) for k in keys],
                "carried": {str(i): self.carried[k] for i, k in enumerate(keys)}}

    @classmethod
    def from_plain(cls, plain: Mapping[str, Any], cap: int) -> Strata:
        strata = cls(cap)
        strata.names = list(plain["names"])
        strata.refs = dict(plain["refs"])
        strata.carried = {(str(r), str(c)): plain["carried"][str(i)]
                          for i, (r, c) in enumerate(plain["keys"])}
        return strata
