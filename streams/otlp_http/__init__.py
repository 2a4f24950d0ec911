"""``rollguard otlp``: OTLP/HTTP in, without a Collector, written to Kafka as the Collector's
kafka exporter writes it (:mod:`.bodies`, :mod:`.settings`, :mod:`.server`)."""
