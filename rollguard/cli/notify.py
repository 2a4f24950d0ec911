"""``rollguard notify``: post alerts, decisions and outcomes to Slack, a webhook, PagerDuty."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

import click

from rollguard.base.errors import RollguardError
from rollguard.notify.settings import VARIABLES
from rollguard.streams.settings import describe


@click.command("notify", epilog="Environment variables (besides the worker's topics):\n\n\b\n"
               + describe(VARIABLES))
@click.option("--from-beginning", is_flag=True,
              help="A new consumer group starts at the topics' start, not their end.")
@click.option("--loglevel", default="info", type=click.Choice(["debug", "info", "warn", "error"]))
def notify(from_beginning: bool, loglevel: str) -> None:
    """Tell people about regressions, rollbacks and approvals: one thread per episode."""
    from rollguard.notify.service import run_notifier
    from rollguard.notify.settings import NotifySettings
    from rollguard.streams.connect import ensure_topics

    logging.basicConfig(level=loglevel.upper(), format="%(asctime)s %(levelname)s %(message)s")

    async def work() -> None:
        settings = NotifySettings.from_env()
        await ensure_topics(settings.worker.topics(), settings.worker.kafka_bootstrap)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await run_notifier(settings, stop, from_beginning=from_beginning)

    try:
        asyncio.run(work())
    except RollguardError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


COMMANDS = (notify,)
