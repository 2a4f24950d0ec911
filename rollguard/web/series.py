r"""Each metric's candidate against its baseline and the tolerance band, over time, from the
worker's ``/metrics`` (:mod:`rollguard.streams.metrics`): a scrape's text in, points kept per
service.

Pure: the scrape's time is passed in.

>>> value = 'rollguard_metric_value{service="chat",metric="error",'
>>> text = (value + 'release="v1",role="baseline"} 0.02\n'
...         + value + 'release="v2",role="candidate"} 0.09\n'
...         + 'rollguard_metric_limit{service="chat",metric="error"} 0.04\n')
>>> book = SeriesBook()
>>> book.add(read_levels(text), at=100.0)
>>> book.of("chat")["error"]["points"]
[[100.0, 0.02, 0.09, 0.04]]
>>> book.of("chat")["error"]["releases"]
{'baseline': 'v1', 'candidate': 'v2'}
"""

from __future__ import annotations

from collections import deque
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

Levels = dict[str, dict[str, dict[str, Any]]]
"""service → metric → ``baseline``, ``candidate``, ``limit`` (values) and ``releases``."""

POINTS_KEPT = 1800  # per service and metric: at least an hour at one scrape every 2 s
PRELUDE_KEPT = 60  # per metric of a service without a candidate


def read_levels(text: str) -> Levels:
    """The metric levels of one scrape; other families are ignored."""
    found: Levels = {}
    for family in text_string_to_metric_families(text):
        if family.name not in ("rollguard_metric_value", "rollguard_metric_limit"):
            continue
        for sample in family.samples:
            labels = sample.labels
            slot = found.setdefault(labels["service"], {}).setdefault(
                labels["metric"], {"releases": {}})
            if family.name == "rollguard_metric_limit":
                slot["limit"] = sample.value
            else:
                slot[labels["role"]] = sample.value
                slot["releases"][labels["role"]] = labels["release"]
    return found


class SeriesBook:
    """The last :data:`POINTS_KEPT` changes of every service's metrics since it had a
    candidate, and the last :data:`PRELUDE_KEPT` before: ``(at, baseline, candidate, limit)``
    (None where the scrape had no value).

    A scrape equal to the point before adds nothing (levels change once per closed bucket,
    scrapes come more often), and a fleet of settled services keeps only a short prelude
    each: the baseline just before a candidate arrives.
    """

    def __init__(self, kept: int = POINTS_KEPT) -> None:
        self.kept = kept
        self.points: dict[tuple[str, str], deque[tuple[float, ...]]] = {}
        self.releases: dict[tuple[str, str], dict[str, str]] = {}

    def add(self, levels: Levels, at: float) -> None:
        for service, metrics in levels.items():
            for metric, slot in metrics.items():
                key = (service, metric)
                points = self.points.get(key)
                judged = slot.get("candidate") is not None
                if points is None or (judged and points.maxlen != self.kept):
                    points = self.points[key] = deque(points or (), maxlen=self.kept
                                                      if judged else PRELUDE_KEPT)
                values = (slot.get("baseline"), slot.get("candidate"), slot.get("limit"))
                if points and points[-1][1:] == values:
                    continue
                points.append((at, *values))  # type: ignore[arg-type]
                self.releases[key] = dict(slot["releases"])

    def of(self, service: str) -> dict[str, dict[str, Any]]:
        """metric → ``{"points": [...], "releases": {role: release}}`` of ``service``."""
        return {metric: {"points": [list(p) for p in points],
                         "releases": self.releases.get((s, metric), {})}
                for (s, metric), points in self.points.items() if s == service}
