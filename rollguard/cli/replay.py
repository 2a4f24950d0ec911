"""``rollguard replay EVENTS.jsonl [--policy FILE] [--plot OUT.png]``."""

from __future__ import annotations

import sys
from typing import BinaryIO

import click
import orjson

from rollguard.analysis.replay import Replay
from rollguard.base.errors import ConfigError
from rollguard.detectors.decision import Decision
from rollguard.detectors.policy import default_policy, load_policy


def _open(path: str) -> BinaryIO:
    if path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")
    except OSError as exc:
        raise click.ClickException(f"cannot open {path}: {exc.strerror}") from None


@click.command("replay")
@click.argument("events", metavar="EVENTS.jsonl")
@click.option("--policy", "policy_path", metavar="FILE", help="YAML or TOML policy "
              "(default: the shipped default policy).")
@click.option("--plot", "plot_path", metavar="OUT.png", help="Draw metrics, tolerance band "
              "and decisions into a PNG (needs rollguard[plot]).")
def replay(events: str, policy_path: str | None, plot_path: str | None) -> None:
    """Run the decision core over recorded events (`-` for stdin), in file order.

    Prints one JSON object per decision on stdout and a summary on stderr.
    """
    try:
        policy = load_policy(policy_path) if policy_path else default_policy()
        recorder = None
        if plot_path:
            from rollguard.analysis.plot import SeriesRecorder, require_matplotlib

            require_matplotlib()
            recorder = SeriesRecorder(policy)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    out = sys.stdout.buffer

    def emit(decision: Decision) -> None:
        out.write(orjson.dumps(decision.to_dict()) + b"\n")

    source = _open(events)
    run = Replay(policy, on_decision=emit, on_event=recorder.add if recorder else None)
    try:
        run.feed_lines(source)
    finally:
        if source is not sys.stdin.buffer:
            source.close()
    summary = run.finish()
    out.flush()
    for line in summary.lines():
        click.echo(line, err=True)
    if recorder is not None and plot_path:
        from rollguard.analysis.plot import draw

        click.echo(f"plot: {draw(recorder, run.decisions, plot_path)}", err=True)


COMMANDS = (replay,)
