"""``rollguard web``: the status page an on-call engineer reads at a glance."""

from __future__ import annotations

import click

from rollguard.cli import run_until_stopped
from rollguard.web.settings import VARIABLES


def _help() -> str:
    from rollguard.streams.settings import describe

    return ("Serve the live status page: every service's pointer and judgement, each "
            "metric's candidate against its baseline, decisions, history and approvals.\n\n"
            "Settings (environment):\n\n\b\n" + describe(VARIABLES))


@click.command("web", help=_help())
@click.option("--service", "services", multiple=True,
              help="Show only this service (repeatable); default: every service in Redis.")
def web(services: tuple[str, ...]) -> None:
    import asyncio

    from rollguard.actions.keys import check_service
    from rollguard.web.server import serving
    from rollguard.web.settings import WebSettings

    async def work() -> None:
        settings = WebSettings.from_env()
        for service in services:
            check_service(service)
        async with serving(settings, services):
            click.echo(f"status page: {settings.address}", err=True)
            await asyncio.Event().wait()  # until interrupted

    run_until_stopped(work)


COMMANDS = (web,)
