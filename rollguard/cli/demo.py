"""``rollguard demo`` (the README's main command), ``simulate`` and ``demo-server``."""

from __future__ import annotations

import dataclasses

import click

from rollguard.base.config import redis_url
from rollguard.cli import run_until_stopped
from rollguard.demo.scenario import SCENARIOS


@click.command("demo")
@click.option("--scenario", type=click.Choice(sorted(SCENARIOS)), default="regression",
              show_default=True, help="regression: a blip, then a sustained regression; "
              "blip: blips only; latency: a latency-only regression; gradual: creeping; "
              "rollout: a good release ramped to stable, then a bad one stopped.")
@click.option("--speed", type=float, default=30.0, show_default=True,
              help="Simulated seconds per wall-clock second.")
@click.option("--rate", type=float, default=20.0, show_default=True,
              help="Outputs per simulated second.")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--hold", "hold_s", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Seconds the status page stays up after the demo (Ctrl-C ends it).")
@click.option("--via", type=click.Choice(["kafka", "otel", "otelcol"]), default="kafka",
              show_default=True, help="kafka: the service sends rollguard's events; otel: "
              "OpenTelemetry spans and evaluation events through rollguard otlp; otelcol: "
              "the same through a local OpenTelemetry Collector (a checkout builds it).")
def demo(scenario: str, speed: float, rate: float, seed: int, hold_s: float,
         via: str) -> None:
    """Watch a regression caught and rolled back, live, on local Kafka and Redis."""
    from rich.console import Console

    from rollguard.demo.run import DemoOptions, run_demo

    if speed <= 0 or rate <= 0:
        raise click.BadParameter("--speed and --rate must be > 0")
    chosen = dataclasses.replace(SCENARIOS[scenario], rate=rate)
    options = DemoOptions(chosen, speed=speed, seed=seed, hold_s=hold_s, via=via)
    run_until_stopped(lambda: run_demo(options, Console()))


@click.command("simulate")
@click.option("--service", default="support-bot", show_default=True)
@click.option("--scenario", type=click.Choice(sorted(SCENARIOS)), default="regression",
              show_default=True)
@click.option("--speed", type=float, default=30.0, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
def simulate(service: str, scenario: str, speed: float, seed: int) -> None:
    """Run only the demo's simulated LLM service against a running worker."""
    from rollguard.demo.run import DemoOptions, run_simulated_service

    options = DemoOptions(SCENARIOS[scenario], speed=speed, seed=seed, service=service)
    run_until_stopped(lambda: run_simulated_service(options))


@click.command("demo-server", hidden=True)
@click.argument("service")
def demo_server(service: str) -> None:
    """A serving process that follows SERVICE's pointer and prints each switch as JSON."""
    from rollguard.demo.server import serve

    run_until_stopped(lambda: serve(service, redis_url()))


COMMANDS = (demo, simulate, demo_server)
