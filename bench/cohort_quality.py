"""Cohort scenarios over many seeds (``bench.scenarios.cohort_scenarios``): false rollbacks,
cohort regressions found and how fast, with the default policy.

    .venv/bin/python -m bench.cohort_quality --seeds 20

Prints one row per scenario: rollbacks where none is allowed (the aggregate is worse by at
most half a tolerance), rollbacks where one is allowed, the worse cohort found (where one
is) and the median and worst delay from the onset, and false cohort findings (another
cohort, or any where none is worse).
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict

from bench.scenarios import START, cohort_scenarios, cohort_truth
from rollguard.analysis.replay import replay_events
from rollguard.detectors.decision import DecisionAction, Verdict
from rollguard.detectors.policy import default_policy


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=20)
    args = parser.parse_args()
    policy = default_policy()
    rows: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for seed in range(args.seeds):
        for scenario in cohort_scenarios(seed):
            allowed, cohort, _must = cohort_truth(scenario)
            decisions = replay_events(scenario.events(), policy)
            row = rows[scenario.name]
            rolled = any(d.action == DecisionAction.ROLLBACK for d in decisions)
            row["false_rollbacks" if not allowed else "rollbacks"].append(float(rolled))
            found = [d for d in decisions
                     if d.verdict == Verdict.SUSTAINED and "cohort" in d.evidence]
            row["false_findings"].append(float(sum(d.evidence["cohort"] != cohort
                                                   for d in found)))
            if cohort is not None:
                hit = [d for d in found if d.evidence["cohort"] == cohort]
                row["found"].append(float(bool(hit)))
                onset = START + scenario.deploy_at + scenario.onset
                row["delay"] += [(d.ts - onset) / 60 for d in hit]
    print(f"{args.seeds} seeds; default policy; cohort threshold "
          f"{policy.evidence_threshold:g} + ln({policy.max_cohorts})")
    print("| scenario | false rollbacks | rollbacks (allowed) | cohort found | median / worst "
          "delay | false cohort findings |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, row in rows.items():
        delay = (f"{statistics.median(row['delay']):.1f} / {max(row['delay']):.1f} min"
                 if row["delay"] else "—")
        print(f"| {name} | {_count(row, 'false_rollbacks')} | {_count(row, 'rollbacks')} | "
              f"{_count(row, 'found')} | {delay} | {int(sum(row['false_findings']))} |")


def _count(row: dict[str, list[float]], key: str) -> str:
    values = row.get(key)
    return f"{int(sum(values))}/{len(values)}" if values else "—"


if __name__ == "__main__":
    main()
