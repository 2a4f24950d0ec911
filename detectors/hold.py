"""A cut-over candidate's rollbacks and the fleet: tell it the moves, wait, be ruled.

Only a candidate with no stable release serving beside it (a cutover) is held this way; a
canary is compared with the stable at the same moments (:mod:`detectors.weather`). See
:mod:`detectors.fleet` for the rule.
"""

from __future__ import annotations

from rollguard.detectors.candidate import Candidate
from rollguard.detectors.decision import Decision, DecisionAction, Verdict
from rollguard.detectors.fleet import FleetView, Incident, Move
from rollguard.detectors.policy import Policy
from rollguard.detectors.track import MetricTrack


def tell_moves(view: FleetView, service: str, cand: Candidate, policy: Policy) -> None:
    """Tell the fleet each metric of ``cand`` whose evidence against its history reached
    the weather's bar, once per run (a run is named by its first bucket)."""
    bar = policy.weather_evidence
    for name, track in cand.tracks.items():
        if track.run and track.cusum >= bar and track.moved != track.run[0][0]:
            track.moved = int(track.run[0][0])
            view.add(Move(service, name, track.moved * policy.bucket_seconds), local=True)


def wait_for_fleet(view: FleetView, decisions: list[Decision], cand: Candidate, ts: float,
                   policy: Policy) -> list[Decision]:
    """The decisions to carry out now. A sustained rollback of one metric that other
    services moved on at about the same time waits for the fleet's word instead (one that
    moved alone is a regression of its own: it goes ahead at once)."""
    out = []
    for d in decisions:
        metric = d.evidence.get("metric")
        track = cand.tracks.get(metric) if isinstance(metric, str) else None
        if (d.action != DecisionAction.ROLLBACK or d.verdict != Verdict.SUSTAINED
                or track is None or "cohort" in d.evidence):
            out.append(d)
            continue
        start = (track.moved if track.moved >= 0 else track.run[0][0]) * policy.bucket_seconds
        if not view.together(Move(d.service, str(metric), start)):
            out.append(d)
            continue
        cand.finished = False  # not yet: the fleet rules first
        cand.waiting.append([ts + policy.fleet_wait_seconds, metric, start, d.to_dict()])
    return out


def rule_waiting(view: FleetView, service: str, cand: Candidate, now: float,
                 force: bool = False) -> list[Decision]:
    """Rule the waiting rollbacks that are due (all of them with ``force``)."""
    out: list[Decision] = []
    for item in list(cand.waiting):
        due, metric, start, raw = item
        if now < due and not force:
            continue
        cand.waiting.remove(item)
        if cand.finished:
            continue  # rolled back already, for another metric
        decision = Decision.from_dict(raw)
        decision.ts = min(now, due)
        incident, new = view.rule(Move(service, metric, start))
        if incident is None:
            cand.finished = not decision.dry_run
            out.append(decision)
            continue
        cand.tracks[metric] = MetricTrack()  # judged afresh once the incident is over
        if metric in cand.fired:
            cand.fired.remove(metric)
        out.append(_held(decision, incident, new))
    return out


def _held(decision: Decision, incident: Incident, new: bool) -> Decision:
    names = ", ".join(incident.services)
    evidence = {**decision.evidence, "fleet": {"metric": incident.metric,
                                               "since": incident.start,
                                               "services": list(incident.services)}}
    if new:
        reason = (f"Fleet-wide incident: {incident.metric} moved at once on "
                  f"{len(incident.services)} services ({names}); their candidates are not "
                  f"rolled back. {decision.reason}")
        verdict = Verdict.FLEET
    else:
        reason = (f"Held: part of the fleet-wide {incident.metric} incident since "
                  f"{incident.start:.0f} ({names}). {decision.reason}")
        verdict = Verdict.HELD
    return Decision(decision.ts, decision.service, decision.release, DecisionAction.ALERT,
                    verdict, decision.to, decision.components, reason, evidence)
