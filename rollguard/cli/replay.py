"""``rollguard replay EVENTS.jsonl [--policy FILE] [--plot OUT.png]``."""

from __future__ import annotations

import sys
from typing import Any, BinaryIO

import click
import orjson

from rollguard.analysis.replay import Replay
from rollguard.analysis.replay_rollout import RolloutSpec
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
@click.option("--rollout", "rollout_release", metavar="RELEASE", help="Judge RELEASE's "
              "guarded rollout as the worker would, by the policy's rollout: plan: each ramp "
              "verdict is a JSON line too (\"type\": \"rollout\").")
@click.option("--rollout-start", type=float, metavar="TS", help="When the rollout starts "
              "(event time, unix seconds) [default: the release's first event].")
def replay(events: str, policy_path: str | None, plot_path: str | None,
           rollout_release: str | None, rollout_start: float | None) -> None:
    """Run the decision core over recorded events (`-` for stdin), in file order.

    Prints one JSON object per decision on stdout and a summary on stderr. With --rollout,
    each service's stable release (the first other release its events name) starts a
    guarded rollout of RELEASE, whose steps, holds, aborts and stable verdicts are judged
    from the same measurements as the worker's and printed beside the decisions; the
    recorded traffic stays at the shares it was recorded at.
    """
    try:
        policy = load_policy(policy_path) if policy_path else default_policy()
        if rollout_start is not None and rollout_release is None:
            raise ConfigError("--rollout-start: needs --rollout RELEASE")
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

    def told(record: dict[str, Any]) -> None:
        out.write(orjson.dumps(record) + b"\n")

    spec = (RolloutSpec(rollout_release, policy.rollout, rollout_start)
            if rollout_release is not None else None)
    source = _open(events)
    run = Replay(policy, on_decision=emit, on_event=recorder.add if recorder else None,
                 rollout=spec, on_ramp=told)
    try:
        run.feed_lines(source)
    finally:
        if source is not sys.stdin.buffer:
            source.close()
    summary = run.finish()
    out.flush()
    for line in summary.lines():
        click.echo(line, err=True)
    for refused in run.rollout.refused if run.rollout is not None else []:
        click.echo(f"rollout command not applied: {refused}", err=True)
    if recorder is not None and plot_path:
        from rollguard.analysis.plot import draw

        click.echo(f"plot: {draw(recorder, run.decisions, plot_path)}", err=True)


COMMANDS = (replay,)
