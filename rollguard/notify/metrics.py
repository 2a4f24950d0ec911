"""The notifier's Prometheus metrics, read from its destinations' counters when scraped.

Served on ``ROLLGUARD_NOTIFY_METRICS_ADDR`` (off unless set; the worker's 9471 is its own),
named as the worker's (streams/metrics.py):

- ``rollguard_notify_deliveries_total{destination}``: messages that reached the receiver;
- ``rollguard_notify_failures_total{destination}``: delivery attempts that failed;
- ``rollguard_notify_retries_total{destination}``: failed attempts tried again (the rest
  were refused for good, ``rollguard_notify_rejected_total{destination}``);
- ``rollguard_notify_summarised_total{destination}``: messages folded into a digest;
- ``rollguard_notify_queued{destination}``: messages waiting now;
- ``rollguard_notify_unreadable_records_total``: records of the topics it could not read;
- ``rollguard_notify_drill_notice_timestamp_seconds{destination}``: the time of the newest
  notice of a drill delivered to a destination that takes drills (not PagerDuty: a drill
  pages nobody); ``rollguard drill`` waits for it to reach its decision.

>>> from rollguard.notify.outbox import Outbox
>>> box = Outbox(); box.stats.sent = 3
>>> text = render(NotifyMetrics({"slack": box}, lambda: 0).snapshot()).decode()
>>> 'rollguard_notify_deliveries_total{destination="slack"} 3.0' in text
True
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from rollguard.notify.outbox import Outbox
from rollguard.streams.metrics import render

__all__ = ["VARIABLE", "NotifyMetrics", "render"]

VARIABLE = "ROLLGUARD_NOTIFY_METRICS_ADDR"


class NotifyMetrics:
    """Each destination's :class:`~rollguard.notify.outbox.OutboxStats` as metric families;
    nothing is counted twice: the outboxes count, a scrape reads."""

    def __init__(self, outboxes: Mapping[str, Outbox], unreadable: Callable[[], int],
                 drills: Iterable[str] = ()) -> None:
        self.outboxes = outboxes
        self.unreadable = unreadable
        self.drills = tuple(drills)  # the destinations that take drills

    def snapshot(self) -> list[Metric]:
        return list(self._families())

    def _families(self) -> Iterable[Metric]:
        counters = {
            "deliveries": ("Messages that reached their receiver", lambda s: s.sent),
            "failures": ("Delivery attempts that failed", lambda s: s.failed),
            "retries": ("Failed delivery attempts tried again",
                        lambda s: s.failed - s.rejected),
            "rejected": ("Messages the receiver refused for good (4xx)", lambda s: s.rejected),
            "summarised": ("Messages folded into a digest", lambda s: s.summarised),
        }
        for name, (doc, read) in counters.items():
            family = CounterMetricFamily(f"rollguard_notify_{name}", doc,
                                         labels=["destination"])
            for destination, outbox in self.outboxes.items():
                family.add_metric([destination], read(outbox.stats))
            yield family
        queued = GaugeMetricFamily("rollguard_notify_queued", "Messages waiting to be sent",
                                   labels=["destination"])
        for destination, outbox in self.outboxes.items():
            queued.add_metric([destination], len(outbox))
        yield queued
        if self.drills:
            drill = GaugeMetricFamily(
                "rollguard_notify_drill_notice_timestamp_seconds",
                "Time of the newest notice of a drill delivered (0: none)",
                labels=["destination"])
            for destination in self.drills:
                drill.add_metric([destination], self.outboxes[destination].stats.drill_notice_at)
            yield drill
        yield CounterMetricFamily("rollguard_notify_unreadable_records",
                                  "Records of the alerts and audit topics not understood",
                                  value=self.unreadable())
