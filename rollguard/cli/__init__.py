"""The ``rollguard`` command line: one group, one module per area of commands."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click

from rollguard import __version__
from rollguard.errors import RollguardError

T = TypeVar("T")


def run_or_exit(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine; turn a RollguardError into a one-line message and exit code 1."""
    try:
        return asyncio.run(work())
    except RollguardError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


def warn_if_dev_secret(is_default: bool) -> None:
    """Say on stderr that commands are signed with the development default secret."""
    if is_default:
        click.echo("warning: ROLLGUARD_SECRET is not set; signing with the dev default secret, "
                   "which anyone can read in rollguard's source: set it anywhere but a laptop",
                   err=True)


@click.group()
@click.version_option(__version__, prog_name="rollguard")
def main() -> None:
    """Watch generative-AI releases and roll them back when they regress."""


def _register() -> None:
    # Imported here so that `rollguard --help` works even while a module has a problem.
    from rollguard.cli import demo, notify, pointer, replay, services, worker

    groups = (services, pointer, replay, worker, notify, demo)
    for command in (c for group in groups for c in group.COMMANDS):
        main.add_command(command)


_register()
