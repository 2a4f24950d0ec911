"""``rollguard policy check FILE`` and ``rollguard policy explain [POLICY] --rate R``."""

from __future__ import annotations

import math
import time

import click
import orjson
import yaml

from rollguard.base.errors import ConfigError
from rollguard.detectors.policy import Policy, default_policy, load_policy


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
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of a table.")
def explain(path: str | None, rate: float, share: float, base_text: str, runs: int,
            seed: int, as_json: bool) -> None:
    """What POLICY (default: the shipped one) does at a traffic: per metric, minutes to a
    rollback for a sustained shift of 1.5x, 2x and 4x the tolerance (median and 90th
    percentile), false rollbacks per 1,000 candidate-days at no shift, and the lowest
    traffic at which the metric is judged within an hour. Measured by running the decision
    core on seeded simulated events; the output says how many runs.
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
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    counts = Runs(shift_runs=runs, healthy_hours=runs / 4, level_runs=max(3, runs * 3 // 8),
                  seed=seed)
    started = time.process_time()
    reports = simulate(chosen, rate, share, bases, counts)
    took = time.process_time() - started
    head = {"policy": chosen.name, "events_per_s": rate, "share": share, "seed": seed,
            "runs_per_shift": counts.shift_runs, "healthy_candidate_hours":
            max(1, round(counts.healthy_hours)), "runs_per_traffic_level": counts.level_runs,
            "cpu_seconds": round(took, 1)}
    if as_json:
        out = {**head, "metrics": [r.to_dict() for r in reports]}
        click.echo(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())
        return
    from rollguard.analysis.explain_policy import explain_table

    for line in explain_table(chosen, head, [r.to_dict() for r in reports]):
        click.echo(line)


COMMANDS = (policy,)
