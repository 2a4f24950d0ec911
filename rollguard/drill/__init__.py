"""``rollguard drill``: a rehearsal of the whole guard on a drill service of its own."""

NOTIFY_METRICS_URL = "http://127.0.0.1:9472/metrics"  # the notifier's documented /metrics
METRICS_VARIABLE = "ROLLGUARD_DRILL_METRICS_ADDR"  # where `rollguard drill --every` serves
METRICS_ADDR = "127.0.0.1:9473"
