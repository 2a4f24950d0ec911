"""OpenTelemetry in: OTLP logs and traces (as the Collector's kafka exporter writes them)
read as rollguard events. See docs/opentelemetry.md; the entry point is
:class:`~rollguard.streams.otlp.translate.OtlpReader`."""
