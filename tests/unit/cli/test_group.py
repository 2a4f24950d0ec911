"""The command line's table of commands stays in step with the modules that define them."""

from __future__ import annotations

import importlib

import click
import pytest

from rollguard.cli import COMMAND_MODULES, main


@pytest.mark.parametrize("module", sorted(set(COMMAND_MODULES.values())))
def test_each_module_defines_exactly_the_commands_the_table_gives_it(module: str) -> None:
    """A command added to a module without a table entry (or the reverse) is caught."""
    defined = {c.name for c in importlib.import_module(f"rollguard.cli.{module}").COMMANDS}
    assert defined == {name for name, home in COMMAND_MODULES.items() if home == module}


def test_an_unknown_command_is_refused_by_name() -> None:
    """A typo gets click's usual error, not an import failure."""
    with pytest.raises(click.UsageError, match="No such command 'replya'"):
        main.main(["replya"], standalone_mode=False)
