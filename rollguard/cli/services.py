"""``rollguard services up|down|status`` and ``rollguard check``."""

from __future__ import annotations

import sys

import click

from rollguard import services as local
from rollguard.check import check_all
from rollguard.cli import run_or_exit


@click.group("services")
def services_group() -> None:
    """Start, stop or check the local Kafka broker and Redis server."""


@services_group.command("up")
def up() -> None:
    """Start both servers unless they already answer (then reuse them)."""
    sys.exit(local.main(["up"]))


@services_group.command("down")
def down() -> None:
    """Stop the servers that `up` started; leave others alone."""
    sys.exit(local.main(["down"]))


@services_group.command("status")
def status() -> None:
    """Say whether each server answers; exit 1 if one does not."""
    sys.exit(local.main(["status"]))


@click.command("check")
def check() -> None:
    """Smoke-check the servers: a Kafka produce/consume and a Redis set/get/publish."""
    for result in run_or_exit(check_all):
        click.echo(str(result))


COMMANDS = (services_group, check)
