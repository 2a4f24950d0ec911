"""``rollguard policy check FILE`` and ``rollguard policy explain [POLICY] --rate R``."""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Any

import click
import orjson
import yaml

from rollguard.base.errors import ConfigError
from rollguard.detectors.policy import Policy, default_policy, load_policy
from rollguard.detectors.rollout_plan import plan_document


def _load(path: str | None) -> Policy:
    try:
        return load_policy(path) if path else default_policy()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@click.group("policy")
def policy() -> None:
    """Check a policy, and see what it does at a given traffic."""


@policy.command("check")
@click.argument("path", metavar="FILE")
def check(path: str) -> None:
    """Validate a YAML or TOML policy and print it with every default filled in.

    An error names the field (e.g. `metrics.error.tolerance`) and exits with status 1.
    """
    from rollguard.detectors.resolved import policy_document

    doc = policy_document(_load(path))
    click.echo(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), nl=False)


def parse_bases(text: str) -> dict[str, float]:
    """``hallucination=0.03,error=0.005`` as a dict; a ConfigError names a bad item.

    >>> parse_bases("hallucination=0.03, error=5e-3")
    {'hallucination': 0.03, 'error': 0.005}
    >>> parse_bases("error")
    Traceback (most recent call last):
    ...
    rollguard.detectors.errors.ConfigError: --base: 'error' must be METRIC=VALUE
    """
    out: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--base: {item!r} must be METRIC=VALUE")
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"--base: {name.strip()}: {value!r} is not a number") from None
        if not math.isfinite(number):
            raise ConfigError(f"--base: {name.strip()}: must be a finite number")
        out[name.strip()] = number
    return out


def _bases(chosen: Policy, text: str) -> dict[str, float]:
    from rollguard.analysis.explain_policy import BASES

    given = parse_bases(text)
    for name in given:
        if name not in chosen.metrics:
            raise ConfigError(f"--base: {name!r} is not a metric of policy {chosen.name!r}")
    bases = {name: given.get(name, BASES.get(name)) for name in chosen.metrics}
    missing = [name for name, value in bases.items() if value is None]
    if missing:
        raise ConfigError(f"--base: metric {missing[0]!r} has no known healthy level; give it "
                          f"as --base {missing[0]}=VALUE")
    return {name: float(value) for name, value in bases.items() if value is not None}


@policy.command("explain")
@click.argument("path", metavar="[POLICY]", required=False)
@click.option("--rate", type=float, required=True, metavar="EVENTS_PER_S",
              help="A service's events per second (stable and candidate together).")
@click.option("--share", type=float, default=0.5, show_default=True, metavar="CANARY_SHARE",
              help="The candidate's share of the traffic.")
@click.option("--base", "base_text", default="", metavar="METRIC=VALUE,...",
              help="Healthy levels (rates: share of 1s; quantiles: the median); the seven "
              "standard metrics have defaults.")
@click.option("--runs", type=click.IntRange(1, 1000), default=8, show_default=True,
              help="Runs per shift (the other run counts scale with it).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--rollout/--no-rollout", "with_rollout", default=None,
              help="Measure the guarded rollout too (some seconds more) [default: when the "
              "policy file has a rollout: section].")
@click.option("--rollout-rate", type=float, default=None, metavar="EVENTS_PER_S",
              help="For the rollout: the candidate's events/s at every step, beside the rest "
              "of --rate on the stable [default: each step's share of --rate].")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of a table.")
def explain(path: str | None, rate: float, share: float, base_text: str, runs: int,
            seed: int, with_rollout: bool | None, rollout_rate: float | None,
            as_json: bool) -> None:
    """What POLICY (default: the shipped one) does at a traffic: per metric, minutes to a
    rollback for a sustained shift of 1.5x, 2x and 4x the tolerance (median and 90th
    percentile), false rollbacks per 1,000 candidate-days at no shift, and the lowest
    traffic at which the metric is judged within an hour; per evaluation metric, how a lag
    of its results of 1, 5 and 15 minutes changes the time to a rollback. Measured by
    running the decision core on seeded simulated events; the output says how many runs.

    With the guarded rollout (see --rollout): per step of the policy's plan, minutes to pass
    for a candidate as good as the stable (median and 90th percentile) and how many of the
    candidates worse by 1.5x and 2x the tolerance pass it; and the time to stable.
    """
    from rollguard.analysis.explain_policy import Runs
    from rollguard.analysis.explain_policy import explain as simulate

    chosen = _load(path)
    try:
        if not (math.isfinite(rate) and 0 < rate <= 10_000):
            raise ConfigError(f"--rate: must be > 0 and <= 10000 events/s, got {rate:g}")
        if not (math.isfinite(share) and 0 < share < 1):
            raise ConfigError(f"--share: must be between 0 and 1 (exclusive), got {share:g}")
        bases = _bases(chosen, base_text)
        if rollout_rate is not None and not (math.isfinite(rollout_rate)
                                             and 0 < rollout_rate <= rate):
            raise ConfigError(f"--rollout-rate: must be > 0 and <= --rate ({rate:g}), got "
                              f"{rollout_rate:g}")
        if with_rollout is None:
            with_rollout = path is not None and "rollout" in _document(path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    counts = Runs(shift_runs=runs, healthy_hours=runs / 4, level_runs=max(3, runs * 3 // 8),
                  seed=seed)
    started = time.process_time()
    reports = simulate(chosen, rate, share, bases, counts)
    from rollguard.analysis.explain_lag import evaluation_lag, lag_table

    lag_runs = replace(counts, shift_runs=max(2, runs // 2))  # (half: it doubles the CPU)
    lagged = [r.to_dict() for r in evaluation_lag(chosen, rate, share, bases, lag_runs)]
    took = time.process_time() - started
    head = {"policy": chosen.name, "events_per_s": rate, "share": share, "seed": seed,
            "runs_per_shift": counts.shift_runs, "healthy_candidate_hours":
            max(1, round(counts.healthy_hours)), "runs_per_traffic_level": counts.level_runs,
            "cpu_seconds": round(took, 1)}
    rollout = _rollout(chosen, rate, rollout_rate, bases, runs, seed) if with_rollout else None
    if as_json:
        out = {**head, "metrics": [r.to_dict() for r in reports], "evaluation_lag": lagged}
        if rollout is not None:
            out["rollout"] = rollout
        click.echo(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())
        return
    from rollguard.analysis.explain_policy import explain_table

    for line in explain_table(chosen, head, [r.to_dict() for r in reports]):
        click.echo(line)
    for line in lag_table(chosen, lagged):
        click.echo(line)
    if rollout is not None:
        from rollguard.analysis.explain_rollout import rollout_table

        click.echo("")
        for line in rollout_table(rollout, rollout["traffic"]):
            click.echo(line)
        click.echo(f"({rollout['runs']} whole rollouts of an equal candidate; "
                   f"{rollout['runs_per_step']} runs per step and shift of a worse one, "
                   f"one metric worse in turn, judged by non-inferiority alone; "
                   f"{rollout['cpu_seconds']:g} s of CPU)")


def _document(path: str) -> dict[str, object]:
    from rollguard.detectors.documents import read_document

    raw = read_document(path, "policy file")
    return dict(raw) if isinstance(raw, dict) else {}


def _rollout(chosen: Policy, rate: float, rollout_rate: float | None,
             bases: dict[str, float], runs: int, seed: int) -> dict[str, Any]:
    """The guarded rollout's figures (:func:`~rollguard.analysis.explain_rollout.explain_rollout`)
    at ``rate``, the candidate on each step's share of it or at ``rollout_rate`` per step."""
    from rollguard.analysis.explain_rollout import RolloutRuns, explain_rollout, per_step, split

    if rollout_rate is None:
        traffic, text = split(rate), f"{rate:g} events/s, the candidate on each step's share"
    else:
        traffic = per_step(rollout_rate, max(rate - rollout_rate, 0.0))
        text = (f"{rollout_rate:g} candidate events/s at every step, beside "
                f"{max(rate - rollout_rate, 0.0):g} on the stable")
    counts = RolloutRuns(equal_runs=max(2, runs), step_runs=max(2, runs), seed=seed)
    started = time.process_time()
    found = explain_rollout(chosen, traffic, counts, bases)
    took = time.process_time() - started
    return {**found, "traffic": text, "runs_per_step": counts.step_runs,
            "plan": plan_document(chosen.rollout), "cpu_seconds": round(took, 1)}


COMMANDS = (policy,)
