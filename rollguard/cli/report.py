"""``rollguard report``: the story of a service's last incident, or of every one in a range."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import click

from rollguard.cli import run_or_exit
from rollguard.report.render import FORMATS


@click.command("report")
@click.argument("service")
@click.option("--since", metavar="TIME", default=None,
              help="Every incident from TIME on (90m, 2h, 1d, or ISO 8601 such as "
              "2026-11-30T08:00Z); default: the last incident only.")
@click.option("--format", "form", type=click.Choice(FORMATS), default="md", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to this file instead of standard output.")
@click.option("--chart", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="PNG", help="Draw each incident's metrics against the baseline into "
              "this PNG (linked from the report), from the events topic while it holds them; "
              "needs rollguard[plot].")
def report(service: str, since: str | None, form: str, output: Path | None,
           chart: Path | None) -> None:
    """How SERVICE's rollbacks happened, from the pointer history in Redis and the audit
    topic: deploy, alerts, the decision with its evidence, the command and its approvals,
    the flip and its epochs, the pointer now and the policy in force."""
    from rollguard.base.errors import ConfigError
    from rollguard.report.render import RENDERERS

    async def work() -> str:
        from rollguard.actions.keys import check_service
        from rollguard.report.assemble import assemble
        from rollguard.report.story import parse_since

        check_service(service)
        now = time.time()
        try:
            start = parse_since(since, now) if since is not None else None
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        found = await assemble(service, start, now, chart)
        if output is not None:  # the report links the charts from where it is written
            found = dataclasses.replace(found, charts={
                k: os.path.relpath(v, output.parent) for k, v in found.charts.items()})
        if chart is not None and len(found.charts) < len(found.incidents):
            click.echo("note: no chart for an incident whose events the events topic no "
                       "longer holds", err=True)
        return RENDERERS[form](found)

    text = run_or_exit(work)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)


COMMANDS = (report,)
