"""Bucket-level simulation of one rate metric, for calibrating the rate tests over many seeds.

The event-level scenarios (bench/scenarios.py) cost about a second per run; here the counts
of each 10-second bucket are drawn directly (Poisson arrivals, binomial 1s), folded into the
stable's decayed reference exactly as the monitor does, and judged by the real
:func:`rollguard.detectors.assess.assess_bucket`. Thousands of runs take a minute, which is what
measuring a false-rollback rate of well under 1 % needs.

Run: ``python -m bench.rate_sim --runs 500`` prints delays and false rollbacks per case.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

from rollguard.detectors.accumulate import fold
from rollguard.detectors.assess import assess_bucket
from rollguard.detectors.candidate import Candidate, Context
from rollguard.detectors.policy import Policy, default_policy

DEPLOY = 600.0


@dataclass(frozen=True)
class RateCase:
    """A candidate's rate, ``base + shift(t) x tol``, next to a stable at ``base``."""

    name: str
    base: float = 0.03
    tol: float = 0.02
    rate: float = 2.0
    magnitude: float = 2.0
    onset: float = 0.0  # seconds after the deploy
    blip: float | None = None  # the shift lasts this long, then recovers
    blips: tuple[float, ...] = ()  # onsets of further blips
    under: float = 0.0  # a shift (in tolerances) under the blip, e.g. 0.5
    cutover: bool = False
    duration: float = 3600.0

    def shift(self, t: float) -> float:
        if self.blip is not None:
            starts = (self.onset, *self.blips)
            hit = any(s <= t < s + self.blip for s in starts)
            return self.magnitude if hit else self.under
        return self.magnitude if t >= self.onset else 0.0

    @property
    def expect_rollback(self) -> bool:
        return self.blip is None and self.magnitude >= 2.0


def one_metric_policy(base: Policy, tol: float, **changes: float) -> Policy:
    """The default policy's settings with one rate metric of tolerance ``tol``."""
    rule = replace(base.metrics["error"], name="m", tolerance=tol)
    return replace(base, metrics={"m": rule}, composites=(), **changes)  # type: ignore[arg-type]


def buckets(case: RateCase, seed: int) -> Iterator[tuple[int, list | None, list | None]]:
    """``(bucket, stable [n, k, k] or None, candidate [n, k, k] or None)`` per 10 s."""
    rng = np.random.default_rng(seed)
    width = 10.0
    stable_rate = 4 * case.rate
    first = int(1_790_000_000 // width)
    for i in range(int(case.duration // width)):
        t = i * width
        deployed = t >= DEPLOY
        s_rate = (0.0 if case.cutover else stable_rate) if deployed else stable_rate + case.rate
        ns = int(rng.poisson(s_rate * width))
        ks = int(rng.binomial(ns, case.base)) if ns else 0
        cand = None
        if deployed:
            nc = int(rng.poisson(case.rate * width))
            # The bucket's mean shift: a blip's edge shares a bucket with healthy traffic.
            mean_shift = sum(case.shift(t - DEPLOY + (j + 0.5) * width / 10)
                             for j in range(10)) / 10
            p = min(1.0, case.base + mean_shift * case.tol)
            kc = int(rng.binomial(nc, p)) if nc else 0
            cand = [nc, float(kc), float(kc)] if nc else None
        yield first + i, ([ns, float(ks), float(ks)] if ns else None), cand


def rollback_time(case: RateCase, seed: int, policy: Policy) -> float | None:
    """Seconds after the deploy at which the policy rolls back, or None."""
    decay = 0.5 ** (policy.bucket_seconds / policy.baseline_half_life_seconds)
    ref: dict = {}
    cand_ref: dict = {}
    cand: Candidate | None = None
    for bucket, stable, cand_sums in buckets(case, seed):
        if stable is not None:
            fold(ref, {"m": stable}, decay)
        if cand_sums is None and cand is None:
            continue
        if cand is None:
            cand = Candidate("c", first_bucket=bucket)
        ctx = Context("s", policy, "st", bucket, bucket * 10.0, ref, cand_ref)
        sums = {"m": cand_sums} if cand_sums else None
        for d in assess_bucket(ctx, cand, sums):
            if d.action == "rollback":
                t0 = (bucket - (1_790_000_000 // 10)) * 10.0 + 10.0
                return t0 - DEPLOY
        if sums:
            fold(cand_ref, sums, decay)
    return None


@dataclass
class Summary:
    runs: int
    false: int
    missed: int
    late: int
    delays: list[float]

    def row(self, name: str) -> str:
        med = f"{statistics.median(self.delays):.1f}" if self.delays else "-"
        worst = f"{max(self.delays):.1f}" if self.delays else "-"
        p90 = f"{np.percentile(self.delays, 90):.1f}" if self.delays else "-"
        return (f"| {name} | {self.runs} | {self.false} | {self.missed} | {self.late} | "
                f"{med} | {p90} | {worst} |")


def evaluate(case: RateCase, seeds: range, policy: Policy) -> Summary:
    budget = 480.0 if case.rate >= 2.0 else 1500.0
    out = Summary(len(seeds), 0, 0, 0, [])
    for seed in seeds:
        at = rollback_time(case, seed, policy)
        if not case.expect_rollback:
            out.false += at is not None
            continue
        if at is None:
            out.missed += 1
        elif at < case.onset:
            out.false += 1
        else:
            delay = at - case.onset
            out.delays.append(delay / 60)
            out.late += delay > budget
    return out


def cases(base: float, tol: float) -> list[RateCase]:
    tag = f"{base:g}+{tol:g}"
    return [
        RateCase(f"{tag} 2x 2ev/s", base, tol, duration=DEPLOY + 1500),
        RateCase(f"{tag} 2x 0.5ev/s", base, tol, rate=0.5, duration=DEPLOY + 2400),
        RateCase(f"{tag} 2x late 2ev/s", base, tol, onset=2400, duration=DEPLOY + 3900),
        RateCase(f"{tag} 2x cutover", base, tol, cutover=True, duration=DEPLOY + 1500),
        RateCase(f"{tag} half 2ev/s", base, tol, magnitude=0.5),
        RateCase(f"{tag} half 0.5ev/s", base, tol, rate=0.5, magnitude=0.5),
        RateCase(f"{tag} half 8ev/s", base, tol, rate=8.0, magnitude=0.5),
        RateCase(f"{tag} blip 10x", base, tol, magnitude=10.0, blip=120, onset=600,
                 duration=DEPLOY + 1800),
        RateCase(f"{tag} blip 40x 8ev/s", base, tol, rate=8.0, magnitude=40.0, blip=120,
                 onset=600, duration=DEPLOY + 1800),
        RateCase(f"{tag} two blips", base, tol, magnitude=10.0, blip=120, onset=300,
                 blips=(3900,), duration=DEPLOY + 4800),
        RateCase(f"{tag} blip on half", base, tol, magnitude=10.0, blip=120, onset=900,
                 under=0.5, duration=DEPLOY + 1800),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--rates", default="0.03:0.02,0.005:0.01,0.003:0.01,0.01:0.02,0.1:0.02",
                        help="base:tolerance pairs")
    parser.add_argument("--only", default="", help="cases whose name contains this")
    parser.add_argument("--threshold", type=float, default=None)
    parser.add_argument("--margin", type=float, default=None)
    parser.add_argument("--blip", type=float, default=None,
                        help="blip_seconds (0: no blip protection, for comparison only)")
    args = parser.parse_args(argv)
    changes: dict[str, float] = {}
    if args.blip is not None:
        changes["blip_seconds"] = args.blip
    if args.threshold is not None:
        changes["evidence_threshold"] = args.threshold
    if args.margin is not None:
        changes["baseline_margin"] = args.margin
    print("| case | runs | false | missed | late | median min | p90 min | worst min |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    seeds = range(args.first_seed, args.first_seed + args.runs)
    for pair in args.rates.split(","):
        base, tol = (float(x) for x in pair.split(":"))
        policy = one_metric_policy(default_policy(), tol, **changes)
        for case in cases(base, tol):
            if args.only and args.only not in case.name:
                continue
            print(evaluate(case, seeds, policy).row(case.name), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
