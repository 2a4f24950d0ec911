"""The ``rollguard`` command line: one group, one module per area of commands."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click

from rollguard import __version__
from rollguard.base.errors import ConfigError, RollguardError

T = TypeVar("T")


def run_or_exit(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine; turn a RollguardError into a one-line message and exit code 1."""
    import asyncio  # here: asyncio (and ssl with it) would cost `rollguard replay` 0.1 s

    try:
        return asyncio.run(work())
    except RollguardError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


def run_until_stopped(work: Callable[[], Coroutine[Any, Any, T]]) -> T | None:
    """:func:`run_or_exit` for a long-running command: SIGINT and SIGTERM cancel ``work``
    (its ``finally`` blocks run: children are stopped, buffers flushed) and the command
    returns None. The handlers are the loop's own, so they hold whatever dispositions the
    process inherited (a background job or ``nohup`` starts with SIGINT ignored)."""
    import asyncio
    import signal

    async def until_stopped() -> T | None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, task.cancel)
        try:
            return await work()
        except asyncio.CancelledError:
            return None  # stopped by a signal, cleanly

    return run_or_exit(until_stopped)


def check_text(what: str, value: str) -> str:
    r"""``value`` if it is printable UTF-8 text, else a ConfigError naming ``what``.

    Bytes of the command line that are not UTF-8 reach Python as lone surrogates, which
    would fail much later, in an encoder, with a traceback.

    >>> check_text("command id", "3f2a")
    '3f2a'
    >>> check_text("command id", "3f\t2a")
    Traceback (most recent call last):
    ...
    rollguard.detectors.errors.ConfigError: command id must be printable UTF-8 text, got '3f\t2a'
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


# The module that defines each command. A command's module is imported only when the command
# runs (or --help lists it), so that `rollguard replay` never loads the Kafka and Redis clients
# and starts in a fraction of a second. A test keeps this table in step with the modules.
COMMAND_MODULES = {
    "check": "check",
    "release": "releases", "status": "pointer", "history": "pointer", "promote": "pointer",
    "rollback": "pointer", "pin": "pointer", "unpin": "pointer", "mark-stable": "pointer",
    "replay": "replay", "policy": "policy",
    "worker": "worker", "approve": "approve", "operator": "operators",
    "notify": "notify", "drill": "drill", "otlp": "otlp",
    "web": "web", "report": "report", "rollout": "rollout",
    "demo": "demo", "simulate": "demo", "demo-server": "demo",
}


class LazyGroup(click.Group):
    """A group whose commands come from :data:`COMMAND_MODULES`, imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMAND_MODULES})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = self.commands.get(cmd_name)
        if command is not None or cmd_name not in COMMAND_MODULES:
            return command
        module = importlib.import_module(f"rollguard.cli.{COMMAND_MODULES[cmd_name]}")
        commands: tuple[click.Command, ...] = module.COMMANDS
        return next(c for c in commands if c.name == cmd_name)


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="rollguard")
@click.option("--dev", is_flag=True, help="Without ROLLGUARD_SECRET, sign commands with the "
              "development secret (a laptop only; the worker never accepts this flag).")
def main(dev: bool) -> None:
    """Watch generative-AI releases and roll them back when they regress."""
