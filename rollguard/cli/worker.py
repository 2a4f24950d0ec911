"""``rollguard worker``: the Faust monitor and actuator."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import click

from rollguard.base.config import redis_url
from rollguard.base.errors import RollguardError
from rollguard.base.redact import install_log_redaction
from rollguard.cli import warn_if_dev_secret
from rollguard.streams.settings import WorkerSettings, describe

if TYPE_CHECKING:
    from rollguard.detectors.policy import Policy


def worker_policy(settings: WorkerSettings) -> Policy:
    """The policy the worker judges by: ``ROLLGUARD_POLICY``, else the shipped default."""
    from rollguard.detectors.policy import default_policy, load_policy

    return load_policy(settings.policy_path) if settings.policy_path else default_policy()


def data_dir(path: str) -> None:
    """Make the worker's data folder (Faust's, for the table's local copy) if it is missing;
    a path that cannot be one is a one-line error naming ROLLGUARD_DATA_DIR."""
    from pathlib import Path

    from rollguard.base.errors import ConfigError

    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"ROLLGUARD_DATA_DIR: cannot make the folder {path!r}: "
                          f"{exc.strerror or exc}") from exc


def use_event_loop(name: str) -> None:
    """Run Faust on ``name`` (ROLLGUARD_EVENT_LOOP): uvloop, or asyncio's own loop."""
    if name == "uvloop":
        import mode.loop

        try:
            mode.loop.use("uvloop")
        except ImportError as exc:
            from rollguard.base.errors import ConfigError

            raise ConfigError("ROLLGUARD_EVENT_LOOP=uvloop: uvloop is not installed "
                              "(pip install uvloop, or set ROLLGUARD_EVENT_LOOP=asyncio)"
                              ) from exc


@click.command("worker", epilog="Environment variables:\n\n\b\n" + describe())
@click.option("--loglevel", default="info", type=click.Choice(["debug", "info", "warn", "error"]))
def worker(loglevel: str) -> None:
    """Run the streaming monitor: events in, decisions out, the pointer flipped.

    It refuses to start without ROLLGUARD_SECRET (or ROLLGUARD_SECRET_FILE), and when Kafka
    refuses its credentials (checked before Faust starts, so the error is one line, not a
    retry loop)."""
    import faust

    from rollguard.actions.connect import check_login
    from rollguard.streams.app import create_app
    from rollguard.streams.connect import prepare_topics

    logging.basicConfig(level=loglevel.upper())
    try:
        settings = WorkerSettings.from_env()
        data_dir(settings.data_dir)
        install_log_redaction([settings.secret, settings.kafka_security.password,
                               urlparse(redis_url()).password])
        policy = worker_policy(settings)
        asyncio.run(check_login(settings.redis_url))
        # An events topic that exists already keeps its partition count: the worker adopts it.
        settings = asyncio.run(prepare_topics(settings))
        use_event_loop(settings.event_loop)
        app = create_app(settings, policy)  # binds the metrics address: refused when in use
    except RollguardError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    warn_if_dev_secret(settings.secret_is_default)
    faust.Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()


COMMANDS = (worker,)
