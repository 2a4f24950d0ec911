"""Single-event lines of a recording, counted many at a time, deciding exactly as one by one.

A recording mostly holds one event object per line, the services interleaved. One by one, each
line costs several microseconds of Python: decoding, checking, observing. Here a run of such
lines is grouped per service; each service's events are cut where event time opens a later
bucket, and each piece goes to its monitor as blocks (:mod:`rollguard.detectors.blocks`, one per
release and cohort), checked a column at a time and counted with
:meth:`~rollguard.detectors.monitor.ServiceMonitor.observe_interleaved`. The result is exactly
that of feeding the lines one by one: the same decisions in the same order (each piece's
decisions are placed at its first line), the same counts, the same monitors created in the same
order. Whatever does not fit takes the one-by-one path in its place: a line that is not one
event object (an array, a block, an OTLP request) is handed back to the caller; a service
whose events in the run are not all valid, or a piece with a duplicate or a late event, is
counted event by event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import accumulate, compress, pairwise, repeat
from operator import eq, itemgetter, ne
from typing import TYPE_CHECKING, Any

import orjson

from rollguard.base.errors import InvalidEvent
from rollguard.detectors.blocks import Block, validate_block
from rollguard.detectors.decision import Decision
from rollguard.detectors.events import Event, validate_event
from rollguard.detectors.monitor import ServiceMonitor

if TYPE_CHECKING:
    from rollguard.analysis.replay import Summary

RUN_LINES = 1024  # lines decoded before they are counted: kept small enough to stay in cache
_NUMBERS = frozenset({float, int})
_UNHASHABLE = object()  # the group of events whose service is not even hashable

# What one service's events in a run come to: pieces counted as blocks (their first line,
# blocks, event ids in line order, and lines), or single events (line, event or error).
Piece = tuple[int, list[Block], list[str], list[int]]
Single = tuple[int, Event | InvalidEvent]


class LineBatcher:
    """Count the single-event lines of a stream on behalf of a replay."""

    def __init__(self, monitor_for: Callable[[str], ServiceMonitor],
                 emit: Callable[[list[Decision]], None], summary: Summary,
                 bucket_seconds: float) -> None:
        self._monitor_for = monitor_for
        self._emit = emit
        self._summary = summary
        self._width = bucket_seconds

    def others(self, lines: Iterable[bytes | str]) -> Iterator[bytes | str]:
        """Count every line that holds one event object; yield each other line in its place
        (everything before it counted), for the caller to read as one message."""
        loads, decode_error = orjson.loads, orjson.JSONDecodeError
        run: list[dict[str, Any]] = []
        for line in lines:
            try:
                obj = loads(line)
            except decode_error:
                obj = None
            single = (type(obj) is dict and type(obj.get("event_id")) is not list
                      and "resourceLogs" not in obj and "resourceSpans" not in obj)
            if single:
                run.append(obj)
                if len(run) < RUN_LINES:
                    continue
            if run:
                self.count(run)
                run = []
            if not single:
                yield line
        if run:
            self.count(run)

    def count(self, objs: list[dict[str, Any]]) -> None:
        """Count decoded event objects (not blocks) as if they came one by one."""
        self._summary.read += len(objs)
        groups: dict[Any, list[int]] = {}
        for line, obj in enumerate(objs):
            service = obj.get("service")
            try:
                groups[service].append(line)
            except KeyError:
                groups[service] = [line]
            except TypeError:
                groups.setdefault(_UNHASHABLE, []).append(line)
        plans = []
        for service, lines in groups.items():
            rows = list(map(objs.__getitem__, lines))
            pieces = self._pieces(service, rows, lines) if type(service) is str else None
            singles = _singles(rows, lines) if pieces is None else []
            first = pieces[0][0] if pieces else next(
                (line for line, item in singles if type(item) is Event), None)
            rejected = self._summary.rejected
            for _, item in singles:
                if isinstance(item, InvalidEvent):
                    rejected[item.reason] += 1
            if first is not None:
                plans.append((first, service, pieces or [], singles))
        decided: list[tuple[int, Decision]] = []
        for _, service, pieces, singles in sorted(plans, key=itemgetter(0)):
            # Monitors are made in the order of each service's first valid event, as one
            # by one, so that the replay's end closes them in the same order.
            monitor = self._monitor_for(service)
            for line, blocks, event_ids, lines in pieces:
                made = monitor.observe_interleaved(blocks, event_ids)
                if made is None:  # a duplicate or late event: one by one after all
                    rows = list(map(objs.__getitem__, lines))
                    decided += _observe(monitor, _singles(rows, lines))
                else:
                    decided += [(line, d) for d in made]
            decided += _observe(monitor, singles)
        if decided:
            decided.sort(key=itemgetter(0))  # stable: a line's decisions keep their order
            self._emit([d for _, d in decided])

    def _pieces(self, service: str, rows: list[dict[str, Any]],
                lines: list[int]) -> list[Piece] | None:
        # One service's events cut where event time opens a later bucket, as blocks; None
        # when some event is invalid (or the times cannot be compared).
        ts = _column(rows, "ts")
        if not set(map(type, ts)) <= _NUMBERS:
            return None
        try:
            highest = list(accumulate(map(self._width.__rfloordiv__, ts), max))
        except OverflowError:  # an integer time beyond any float: invalid anyway
            return None
        starts = [0, *compress(range(1, len(ts)), map(ne, highest[1:], highest)), len(ts)]
        ids, metrics = _column(rows, "event_id"), _column(rows, "metrics")
        kinds = _column(rows, "release")
        cohorts = _column(rows, "cohort")
        if cohorts.count(cohorts[0]) != len(cohorts):  # rare: several cohorts, as (release, cohort)
            kinds = list(zip(kinds, cohorts, strict=True))
        pieces: list[Piece] = []
        for start, end in pairwise(starts):
            part = slice(start, end)
            blocks = _blocks(service, kinds[part], cohorts[0], ids[part], ts[part], metrics[part])
            if blocks is None:
                return None
            pieces.append((lines[start], blocks, ids[part], lines[part]))
        return pieces


def _column(rows: list[dict[str, Any]], key: str) -> list[Any]:
    # Each row's value of key (None where it has none), in C when every row has it.
    try:
        return list(map(itemgetter(key), rows))
    except KeyError:
        return [row.get(key) for row in rows]


def _blocks(service: str, kinds: list[Any], cohort: Any, ids: list[Any], ts: list[Any],
            metrics: list[Any]) -> list[Block] | None:
    # Events as valid blocks, one per kind -- release, or (release, cohort) when the cohorts
    # differ -- in the order of their first event; None when some event would be rejected
    # on its own.
    try:
        distinct = list(dict.fromkeys(kinds))
    except TypeError:  # an unhashable release or cohort: invalid anyway
        return None
    blocks = []
    for kind in distinct:
        release, cohort = kind if type(kind) is tuple else (kind, cohort)
        if len(distinct) == 1:
            found = _block(service, release, cohort, ids, ts, metrics)
        else:
            chosen = list(map(eq, repeat(kind), kinds))
            found = _block(service, release, cohort, list(compress(ids, chosen)),
                           list(compress(ts, chosen)), list(compress(metrics, chosen)))
        if found is None:
            return None
        blocks.append(found)
    return blocks


def _block(service: str, release: Any, cohort: Any, ids: list[Any], ts: list[Any],
           metrics: list[Any]) -> Block | None:
    if set(map(type, metrics)) != {dict}:
        return None
    raw = {"service": service, "release": release, "event_id": ids, "ts": ts,
           "metrics": {name: _column(metrics, name) for name in set().union(*metrics)}}
    if cohort is not None:
        raw["cohort"] = cohort
    try:
        block = validate_block(raw)
    except InvalidEvent:
        return None
    # A block reads null as "this event lacks the metric"; in an event object it is a bad
    # value. Every value the objects hold must be among the block's present ones.
    if block is None or sum(map(len, block.dense.values())) != sum(map(len, metrics)):
        return None
    return block


def _singles(rows: list[dict[str, Any]], lines: list[int]) -> list[Single]:
    out: list[Single] = []
    for line, row in zip(lines, rows, strict=True):
        try:
            out.append((line, validate_event(row)))
        except InvalidEvent as exc:
            out.append((line, exc))
    return out


def _observe(monitor: ServiceMonitor, singles: list[Single]) -> list[tuple[int, Decision]]:
    return [(line, d) for line, item in singles if type(item) is Event
            for d in monitor.observe(item)]
