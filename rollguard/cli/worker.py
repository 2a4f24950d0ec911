"""``rollguard worker`` (the Faust monitor and actuator) and ``rollguard approve``."""

from __future__ import annotations

import asyncio
import logging
import sys
import time

import click

from rollguard.cli import run_or_exit, warn_if_dev_secret
from rollguard.errors import RollguardError
from streams.settings import WorkerSettings, describe


def _load_policy(settings: WorkerSettings):  # type: ignore[no-untyped-def]
    from detectors.policy import default_policy, load_policy

    return load_policy(settings.policy_path) if settings.policy_path else default_policy()


@click.command("worker", epilog="Environment variables:\n\n\b\n" + describe())
@click.option("--loglevel", default="info", type=click.Choice(["debug", "info", "warn", "error"]))
def worker(loglevel: str) -> None:
    """Run the streaming monitor: events in, decisions out, the pointer flipped."""
    import faust

    from streams.app import create_app
    from streams.connect import ensure_topics

    try:
        settings = WorkerSettings.from_env()
        policy = _load_policy(settings)
        asyncio.run(ensure_topics(settings.topics(), settings.kafka_bootstrap))
        app = create_app(settings, policy)  # binds the metrics address: refused when in use
    except RollguardError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    warn_if_dev_secret(settings.secret_is_default)
    logging.basicConfig(level=loglevel.upper())
    faust.Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()


@click.command("approve")
@click.argument("service")
@click.argument("command_id")
@click.option("--by", "by", required=True, help="Who approves (recorded in the audit trail).")
def approve(service: str, command_id: str, by: str) -> None:
    """Approve a rollback of SERVICE that waits for a person; the actuator then executes it.

    The alert that asks for approval names both (``rollguard approve SERVICE COMMAND_ID``).
    """
    from actions.approvals import approval
    from actions.keys import check_service
    from streams.connect import producer

    try:
        settings = WorkerSettings.from_env()
        check_service(service)
    except RollguardError as exc:
        raise click.ClickException(str(exc)) from None
    warn_if_dev_secret(settings.secret_is_default)

    async def send() -> None:
        async with producer(settings.kafka_bootstrap) as out:
            value = approval(service, command_id, by, time.time(), settings.secret)
            await out.send_and_wait(settings.topic_commands, value, key=service.encode())

    run_or_exit(send)
    click.echo(f"approval of {command_id} by {by} sent to {settings.topic_commands}")


COMMANDS = (worker, approve)
