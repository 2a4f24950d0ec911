"""Command-line values that are not text are refused with a message, not a traceback."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from rollguard.cli import main


@pytest.mark.parametrize("args", [("approve", "chat", "id\udcff", "--by", "ann"),
                                  ("approve", "chat", "id\n2", "--by", "ann"),
                                  ("approve", "chat", "c1", "--by", "ann\udcff"),
                                  ("approve", "chat\udcff", "c1", "--by", "ann")])
def test_approve_refuses_bytes_that_are_not_text(args: tuple[str, ...]) -> None:
    """Non-UTF-8 bytes of the command line reach click as lone surrogates."""
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Error:" in result.stderr and "\udcff" not in result.stderr


def test_a_component_version_that_is_not_text_is_refused() -> None:
    """Refused before anything is sent to Redis."""
    result = CliRunner().invoke(main, ["release", "register", "chat", "r1", "--component",
                                       "model=m\udcff"])
    assert result.exit_code == 1 and "--component must be printable" in result.stderr
