"""``rollguard check``: a smoke check of the servers rollguard is configured for.

(The local servers themselves are started by ``scripts/services up`` in a checkout: that
tooling is not part of the installed package.)
"""

from __future__ import annotations

import click

from rollguard.cli import run_or_exit
from rollguard.ops.check import check_all


@click.command("check")
def check() -> None:
    """Smoke-check the servers: a Kafka produce/consume and a Redis set/get/publish."""
    for result in run_or_exit(check_all):
        click.echo(str(result))


COMMANDS = (check,)
