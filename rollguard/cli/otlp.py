"""``rollguard otlp``: OTLP/HTTP in, without a Collector, onto the Kafka topics the worker
reads, as the Collector's kafka exporter writes them."""

from __future__ import annotations

import click

from rollguard.cli import run_until_stopped
from rollguard.streams.otlp_http.settings import VARIABLES


def _help() -> str:
    from rollguard.streams.settings import describe

    return ("Receive OpenTelemetry over OTLP/HTTP (POST /v1/logs and /v1/traces, protobuf or "
            "JSON) and write each request to Kafka, as the Collector's kafka exporter does; a "
            "request is answered 200 only once Kafka has it (503 with Retry-After while Kafka "
            "is away). SIGTERM or SIGINT: stop listening, finish the requests under way.\n\n"
            "Settings (environment):\n\n\b\n" + describe(VARIABLES))


@click.command("otlp", help=_help())
@click.option("--loglevel", default="info", type=click.Choice(["debug", "info", "warn", "error"]))
def otlp(loglevel: str) -> None:
    import asyncio
    import logging

    from rollguard.base.redact import install_log_redaction
    from rollguard.streams.otlp_http.server import serving
    from rollguard.streams.otlp_http.settings import OtlpSettings

    logging.basicConfig(level=loglevel.upper(), format="%(asctime)s %(levelname)s %(message)s")

    async def work() -> None:
        settings = OtlpSettings.from_env()
        if settings.token:
            install_log_redaction([settings.token])
        async with serving(settings):
            click.echo(f"otlp: receiving at {settings.url}/v1/logs and /v1/traces; writing "
                       f"{settings.encoding} to {settings.topic_logs} and "
                       f"{settings.topic_spans} at {settings.kafka_bootstrap}", err=True)
            await asyncio.Event().wait()  # until SIGTERM or SIGINT

    run_until_stopped(work)


COMMANDS = (otlp,)
