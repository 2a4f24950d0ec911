"""The ``rollguard`` command line: one group, one module per area of commands."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click

from rollguard import __version__
from rollguard.errors import ConfigError, RollguardError

T = TypeVar("T")


def run_or_exit(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine; turn a RollguardError into a one-line message and exit code 1."""
    try:
        return asyncio.run(work())
    except RollguardError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


def check_text(what: str, value: str) -> str:
    r"""``value`` if it is printable UTF-8 text, else a ConfigError naming ``what``.

    Bytes of the command line that are not UTF-8 reach Python as lone surrogates, which
    would fail much later, in an encoder, with a traceback.

    >>> check_text("command id", "3f2a")
    '3f2a'
    >>> check_text("command id", "3f\t2a")
    Traceback (most recent call last):
    ...
    detectors.errors.ConfigError: command id must be printable UTF-8 text, got '3f\t2a'
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(f"{what} must be printable UTF-8 text, got {value!r}") from None
    if not value.isprintable():
        raise ConfigError(f"{what} must be printable UTF-8 text, got {value!r}")
    return value


def warn_if_dev_secret(is_default: bool) -> None:
    """Say on stderr that commands are signed with the development secret."""
    if is_default:
        click.echo("warning: signing with the development secret (rollguard demo, the tests, "
                   "--dev), which anyone can read in rollguard's source: set ROLLGUARD_SECRET "
                   "anywhere but a laptop", err=True)


def dev_mode() -> bool:
    """``rollguard --dev ...``: the development secret stands in for a missing one."""
    context = click.get_current_context(silent=True)
    return bool(context and context.find_root().params.get("dev"))


@click.group()
@click.version_option(__version__, prog_name="rollguard")
@click.option("--dev", is_flag=True, help="Without ROLLGUARD_SECRET, sign commands with the "
              "development secret (a laptop only; the worker never accepts this flag).")
def main(dev: bool) -> None:
    """Watch generative-AI releases and roll them back when they regress."""


def _register() -> None:
    # Imported here so that `rollguard --help` works even while a module has a problem.
    from rollguard.cli import demo, notify, pointer, replay, services, worker

    groups = (services, pointer, replay, worker, notify, demo)
    for command in (c for group in groups for c in group.COMMANDS):
        main.add_command(command)


_register()
