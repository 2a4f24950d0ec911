"""Events gathered straight into the columns of wire-format blocks, per service.

What :func:`rollguard.streams.wire.blocks_of` makes of a list of event dicts, without the
dicts: one block per service, release and cohort (in the order of their first event), its
``event_id`` and ``ts`` columns in event order and a column per metric (in the order the
metrics first appear), ``None`` where an event lacks the metric. Each block is then
checked exactly as a block read from the events topic
(:func:`rollguard.streams.wire.read_decoded`). A cohort that is no string is kept as it
came, for the check to reject (``bad_cohort``), an array or map one too (grouped by its
``repr``, as bytes: never equal to a string cohort).

>>> columns = Columns()
>>> columns.add_one("chat", "v2", None, "a", 1.5, "toxicity", 0.25)
>>> columns.add("chat", "v2", None, "b", 2.5, {"error": 0.0, "latency_ms": 812.5})
>>> columns.blocks()
[('chat', {'service': 'chat', 'release': 'v2', 'event_id': ['a', 'b'], 'ts': [1.5, 2.5], \
'metrics': {'toxicity': [0.25, None], 'error': [None, 0.0], 'latency_ms': [None, 812.5]}})]
"""

from __future__ import annotations

from typing import Any

# (event ids, times, metric -> (the indexes of the events that have it, their values), cohort)
_Group = tuple[list[str], list[float], dict[str, tuple[list[int], list[float]]], Any]


class Columns:
    """Events as block columns; see the module docstring."""

    __slots__ = ("_groups",)

    def __init__(self) -> None:
        self._groups: dict[tuple[str, str, Any], _Group] = {}

    def add_one(self, service: str, release: str, cohort: Any, event_id: str, ts: float,
                metric: str, value: float) -> None:
        """An event of one metric (an evaluation)."""
        ids, times, metrics, _cohort = self._group(service, release, cohort)
        column = metrics.get(metric)
        if column is None:
            metrics[metric] = ([len(ids)], [value])
        else:
            column[0].append(len(ids))
            column[1].append(value)
        ids.append(event_id)
        times.append(ts)

    def add(self, service: str, release: str, cohort: Any, event_id: str, ts: float,
            values: dict[str, float]) -> None:
        """An event of several metrics (a span)."""
        ids, times, metrics, _cohort = self._group(service, release, cohort)
        index = len(ids)
        for metric, value in values.items():
            column = metrics.get(metric)
            if column is None:
                metrics[metric] = ([index], [value])
            else:
                column[0].append(index)
                column[1].append(value)
        ids.append(event_id)
        times.append(ts)

    def _group(self, service: str, release: str, cohort: Any) -> _Group:
        key = (service, release, cohort if type(cohort) is not dict else repr(cohort).encode())
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = ([], [], {}, cohort)
        return group

    def blocks(self) -> list[tuple[str, dict[str, Any]]]:
        """``(service, block)`` in the order of each block's first event."""
        out = []
        for (service, release, _key), (ids, times, metrics, cohort) in self._groups.items():
            block: dict[str, Any] = {"service": service, "release": release}
            if cohort is not None:
                block["cohort"] = cohort
            block["event_id"] = ids
            block["ts"] = times
            block["metrics"] = {name: _dense(len(ids), at, values)
                                for name, (at, values) in metrics.items()}
            out.append((service, block))
        return out


def _dense(size: int, at: list[int], values: list[float]) -> list[float | None]:
    if len(at) == size:
        return values  # type: ignore[return-value]
    column: list[float | None] = [None] * size
    for index, value in zip(at, values, strict=True):
        column[index] = value
    return column
