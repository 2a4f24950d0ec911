"""The per-service monitor: events in, decisions out, state as versioned bytes.

Events enter the open event-time bucket (:mod:`detectors.intake`); sums are taken and tests
run once per closed bucket (:mod:`detectors.assess`), by the roles of the releases (the
stable one and the candidate, from the release pointer or inferred from the events).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from rollguard.detectors.accumulate import MEAN, Bucket, carry, clip_range, fold, summarise
from rollguard.detectors.assess import assess_bucket
from rollguard.detectors.candidate import Candidate, Context
from rollguard.detectors.codec import decode_state, encode_state
from rollguard.detectors.cohorts import assess_cohorts, standardise
from rollguard.detectors.decision import Decision
from rollguard.detectors.dedupe import DEDUPE_CAP
from rollguard.detectors.evidence import EveryHypotheses
from rollguard.detectors.fleet import FleetView, Move
from rollguard.detectors.hold import rule_waiting, tell_moves, wait_for_fleet
from rollguard.detectors.lanes import LanedIntake, lane_policy
from rollguard.detectors.noninferiority import step_readings
from rollguard.detectors.policy import Policy
from rollguard.detectors.rollout import RampBucket, regressions_of
from rollguard.detectors.rollout_run import RolloutRun
from rollguard.detectors.stages import advance_stage
from rollguard.detectors.strata import Strata, sum_pending
from rollguard.detectors.weather import Weather, discount

FINISHED_MEMORY = 8  # rolled-back episodes remembered, so that none is rolled back twice


class ServiceMonitor(LanedIntake):
    """Watch the releases of one service and decide about its candidate.

    Roles come from :meth:`set_roles`; until it is called they are inferred from the events:
    the first release seen is the stable one, a later one is the candidate. The policy's
    evaluation metrics are judged by a second monitor of the service, ``evaluations``, on
    their own clock (:mod:`detectors.lanes`); its decisions are returned with this one's.

    Examples
    --------
    >>> from rollguard.detectors.events import Event
    >>> from rollguard.detectors.policy import default_policy
    >>> m = ServiceMonitor("chat", default_policy())
    >>> e = Event("id-1", 1_700_000_000.0, "chat", "r1", "", {"error": 0.0})
    >>> m.observe(e), m.stable
    ([], 'r1')
    >>> ServiceMonitor.from_bytes(m.to_bytes(), default_policy()).to_bytes() == m.to_bytes()
    True
    """

    evaluations: ServiceMonitor | None  # the evaluation lane (detectors.lanes), None: none yet

    def __init__(self, service: str, policy: Policy, *, dedupe_cap: int = DEDUPE_CAP):
        super().__init__(policy, dedupe_cap=dedupe_cap)
        self.service = service
        self._dedupe_cap = dedupe_cap
        self._decay = policy.bucket_decay
        self._refs: dict[str, Bucket] = {}
        self._clips: dict[str, tuple[float, float]] = {}
        self._weather = Weather()
        self._stable_seen = -1  # the last bucket the stable release served in
        # The fleet's moves (detectors.fleet), shared by the monitors of a MonitorSet; None:
        # this service is judged alone and a cut-over candidate's rollback never waits.
        self.fleet: FleetView | None = None
        self.stable: str | None = None
        self.candidate: Candidate | None = None
        self.share: float | None = None  # the candidate's share (set_roles), not stored
        self._explicit_roles = False
        # (release, episode) pairs rolled back: an episode is one promotion of a release
        # (the pointer's watched_since; None when roles are inferred from the events).
        self._finished: list[tuple[str, int | None]] = []
        # A cohort's reference stands in a mixture with at least this much (else the
        # aggregate reference stands in for it): a quarter of the rule's minimum sample.
        self._min_weight = {name: rule.min_samples / 4 for name, rule in policy.metrics.items()}
        # A guarded rollout under way (detectors.rollout): each closed bucket of the
        # candidate is also measured for it, and kept until drain_ramp (not in the state).
        self.measure_ramp = False
        self._ramp_buckets: list[RampBucket] = []
        self.rollout: RolloutRun | None = None  # the worker's run of it, kept in the state

    # -- roles ----------------------------------------------------------------------------
    def set_roles(self, stable: str | None, candidate: str | None,
                  episode: int | None = None, share: float | None = None) -> None:
        """Use these roles from now on (the worker reads them from the release pointer).

        ``episode`` tells promotions of one release apart (the epoch at which the pointer
        began to watch it): a release rolled back and promoted again is judged afresh.
        ``share`` is the candidate's share of the traffic in percent (None: not known); a
        staged rollback gives it back when the candidate recovers.
        """
        self._explicit_roles = True
        self.share = share
        self._assign(stable, candidate, episode)
        if self.evaluations is not None:
            self.evaluations.set_roles(stable, candidate, episode, share)

    # -- the evaluation lane (detectors.lanes) -------------------------------------------
    def _open_lane(self) -> ServiceMonitor:
        lane = ServiceMonitor(self.service, lane_policy(self.policy),
                              dedupe_cap=self._dedupe_cap)
        lane.slow = frozenset()
        if self._explicit_roles:
            cand = self.candidate
            lane.set_roles(self.stable, cand.release if cand else None,
                           cand.episode if cand else None, self.share)
        self._sync(lane)
        return lane

    def _sync(self, lane: ServiceMonitor) -> None:
        lane.fleet = self.fleet
        lane.measure_ramp = self.measure_ramp

    def _lane_fed(self, lane: LanedIntake) -> None:
        # A candidate rolled back in one lane is finished in the other: one rollback.
        assert isinstance(lane, ServiceMonitor)
        self._sync(lane)
        for one, other in ((self, lane), (lane, self)):
            done, cand = one.candidate, other.candidate
            if (done is not None and done.finished and cand is not None and not cand.finished
                    and (done.release, done.episode) == (cand.release, cand.episode)):
                cand.finished = True
                other._finish(cand)

    def _finish(self, cand: Candidate) -> None:
        done = (cand.release, cand.episode)
        if cand.finished and done not in self._finished:
            self._finished = [*self._finished, done][-FINISHED_MEMORY:]

    def lanes(self) -> list[ServiceMonitor]:
        """This monitor and its evaluation lane, when it has one."""
        return [self] if self.evaluations is None else [self, self.evaluations]

    def _infer_roles(self, release: str) -> None:
        if (self._explicit_roles or release == self.stable
                or any(release == done for done, _ in self._finished)):
            return
        if self.stable is None:
            self._assign(release, None)
        elif self.candidate is None or self.candidate.release != release:
            self._assign(self.stable, release)

    def _assign(self, stable: str | None, candidate: str | None,
                episode: int | None = None) -> None:
        if stable != self.stable:
            self._weather = Weather()  # the storms were the old stable release's
            if self._strata is not None:
                self._strata.refs = {}  # the cohorts' references are the stable release's
        self.stable = stable
        cand = self.candidate
        if (candidate, episode) != ((cand.release, cand.episode) if cand else (None, None)):
            self.candidate = None if candidate is None or candidate == stable else Candidate(
                candidate, first_bucket=self._bucket,
                finished=(candidate, episode) in self._finished, episode=episode)
        keep = {stable, candidate}
        self._refs = {r: ref for r, ref in self._refs.items() if r in keep}

    def reference(self, release: str) -> Mapping[str, list[Any]] | None:
        """The decayed reference sums of ``release`` (a role it holds), None without one."""
        return self._refs.get(release)

    # -- per bucket -----------------------------------------------------------------------
    def _close(self, ts: float) -> list[Decision]:
        pending, self._open = self._open, {}
        carried, self._carried = self._carried, {}
        stable = self.stable
        roles = {stable, self.candidate.release if self.candidate else None}
        sums = {release: sum_pending(summarise, pending.get(release), self._slots, self._clips,
                                     carried.get(release))
                for release in (*pending, *carried) if release in roles}
        strata = self._strata
        by_cohort = strata.close(stable, self.candidate.release if self.candidate else None,
                                 self._slots, self._clips, self._decay) if strata else {}
        cand = self.candidate
        history = self._refs.setdefault(stable, {}) if stable is not None else {}
        # The history's hypotheses as the bucket closes, made once (when first asked for)
        # for the weather and the candidate: they are most of a quiet bucket's cost.
        hyps = EveryHypotheses(self.policy.metrics, history, self.policy.baseline_margin)
        began = self._weigh_stable(sums[stable], history, hyps) if (
            stable is not None and stable in sums) else {}
        if cand is None or cand.finished or stable is None:
            return []
        if began:
            discount(cand, began)
        cand_sums = sums.get(cand.release)
        cand_ref = self._refs.setdefault(cand.release, {})
        concurrent = frozenset(n for n in self.policy.metrics if self._weather.storming(n))
        ctx = Context(self.service, self.policy, stable, self._bucket, ts,
                      self._baseline(by_cohort, concurrent), cand_ref, self.share, concurrent,
                      None if by_cohort else hyps)
        decisions = assess_bucket(ctx, cand, cand_sums)
        if by_cohort and strata is not None and not cand.finished:
            decisions += assess_cohorts(ctx, cand, by_cohort, strata.refs)
        decisions += advance_stage(ctx, cand)
        if self.fleet is not None:
            if self._bucket - self._stable_seen > ctx.buckets[0]:  # a cutover: history only
                tell_moves(self.fleet, self.service, cand, self.policy)
                decisions = wait_for_fleet(self.fleet, decisions, cand, ts, self.policy)
            decisions += rule_waiting(self.fleet, self.service, cand, ts)
        if self.measure_ramp:
            self._ramp_buckets.append(RampBucket(ts, step_readings(ctx, cand_sums),
                                                 regressions_of(decisions)))
        if cand_sums:
            fold(cand_ref, cand_sums, self._decay)
        self._finish(cand)
        return decisions

    def drain_ramp(self) -> list[RampBucket]:
        """The candidate's buckets closed since the last call, for its guarded rollout
        (``Ramp.observe_bucket`` each, in order); empty unless ``measure_ramp`` is set."""
        drained, self._ramp_buckets = self._ramp_buckets, []
        if self.evaluations is not None:
            drained += self.evaluations.drain_ramp()
        return drained

    def _weigh_stable(self, sums: Bucket, history: Bucket,
                      hyps: EveryHypotheses) -> dict[str, int]:
        # The stable release's bucket into its history, through the weather while a
        # candidate is judged; the storms that began ({metric: start bucket}).
        self._stable_seen = self._bucket
        cand = self.candidate
        began: dict[str, int] = {}
        if cand is None or cand.finished:  # nothing judged: no weather, the plain history
            self._weather.clear(history, self.policy)
            fold(history, sums, self._decay)
        else:
            began = self._weather.close(self._bucket, sums, history, self.policy, hyps)
        self._update_clips()
        if self.fleet is not None:
            for name, since in began.items():
                self.fleet.add(Move(self.service, name, since * self.policy.bucket_seconds),
                               local=True)
        return began

    def _baseline(self, by_cohort: Mapping[str, Bucket],
                  concurrent: frozenset[str]) -> Mapping[str, list[Any]]:
        # The stable's history, of the candidate's cohort mix when cohorts are tracked; in
        # a storm, the stable's strata at the same moments (detectors.weather).
        history = self._refs.get(self.stable or "", {})
        ref = history
        if by_cohort and self._strata is not None:  # compared with the stable of the same mix
            ref = standardise(history, self._strata.refs, by_cohort, self._min_weight)
        storms = {name: self._weather.baseline(name, self.policy.metrics[name], history)[0]
                  for name in concurrent}
        if not storms:
            return ref
        return {**{n: r for n, r in ref.items() if n not in storms},
                **{n: r for n, r in storms.items() if r is not None}}

    def _update_clips(self) -> None:
        # Only when a bucket closes: within a bucket the clips stay as they are, so that its
        # events can be summed at any time in between (to_bytes) with the same result.
        ref = self._refs.get(self.stable or "", {})
        self._clips = {
            name: clip_range(ref[name]) for name, rule in self.policy.metrics.items()
            if self._slots[name][0] == MEAN and name in ref and ref[name][0] >= rule.min_samples
        }

    def rule_fleet(self, now: float, force: bool = False) -> list[Decision]:
        """Rule the candidate's rollbacks waiting for the fleet that are due at ``now``
        (all of them with ``force``: the end of a replay)."""
        cand = self.candidate
        lane = self.evaluations
        decisions = lane.rule_fleet(now, force) if lane is not None else []
        if self.fleet is None or cand is None or not cand.waiting:
            return decisions
        decisions = rule_waiting(self.fleet, self.service, cand, now, force) + decisions
        self._finish(cand)
        if lane is not None:
            self._lane_fed(lane)
        return decisions

    def flush(self, ts: float | None = None) -> list[Decision]:
        """Close the open bucket now (end of a replay); ``ts`` defaults to its end."""
        lane = self.evaluations
        decisions: list[Decision] = []
        if self._bucket >= 0:
            end = (self._bucket + 1) * self.policy.bucket_seconds if ts is None else ts
            decisions = self._close(end)
            self._bucket += 1
            self._far_from = self._far_limit()
        if lane is not None:  # its own time: the end of its open bucket
            decisions += lane.flush()
            self._lane_fed(lane)
        return decisions

    # -- state ----------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The whole state as versioned bytes (see :mod:`detectors.codec`).

        The open bucket's events are folded into exact partial sums first (the sums its
        close would take, as the clips do not change within a bucket), so each event is
        summed once however often the state is written.
        """
        self._carry_open()
        return encode_state({
            "service": self.service,
            "bucket": self._bucket,
            "carried": self._carried,
            "clips": self._clips,
            "refs": self._refs,
            "stable": self.stable,
            "candidate": self.candidate.to_list() if self.candidate else None,
            "explicit_roles": self._explicit_roles,
            "finished": self._finished,
            "dedupe": self._seen.to_list(),
            "counts": self.counts,
            "strata": self._strata.to_plain() if self._strata is not None else None,
            "weather": self._weather.to_plain(),
            "stable_seen": self._stable_seen,
            "ahead": self._ahead.to_plain(),
            "rollout": self.rollout.to_dict() if self.rollout is not None else None,
            **({} if self.evaluations is None else {"evaluations": base64.b64encode(
                self.evaluations.to_bytes()).decode()}),
        })

    def _carry_open(self) -> None:
        carried = self._carried
        self._carried = {
            release: sum_pending(carry, self._open.get(release), self._slots, self._clips,
                                 carried.get(release))
            for release in sorted({*self._open, *carried})}  # one order, however it came
        if self._strata is not None:
            self._strata.carry_open(self._slots, self._clips)
        # The releases stay known as seen in this bucket, as they would without a write.
        self._open = {release: ([], {}) for release in self._open}

    @classmethod
    def from_bytes(cls, data: bytes, policy: Policy, *,
                   dedupe_cap: int = DEDUPE_CAP) -> ServiceMonitor:
        """Rebuild a monitor; later decisions are the same as the original's would be."""
        state: dict[str, Any] = decode_state(data)
        monitor = cls(state["service"], policy, dedupe_cap=dedupe_cap)
        monitor._bucket = state["bucket"]
        monitor._carried = state["carried"]
        monitor._open = {release: ([], {}) for release in state["carried"]}
        monitor._refs = state["refs"]
        monitor.stable = state["stable"]
        raw = state["candidate"]
        monitor.candidate = Candidate.from_list(raw) if raw is not None else None
        monitor._explicit_roles = state["explicit_roles"]
        # Written before episodes: release names alone, of episodes without a number.
        monitor._finished = [(done, None) if isinstance(done, str) else (done[0], done[1])
                             for done in state["finished"]]
        monitor._seen.restore(state["dedupe"])
        monitor.counts.update(state["counts"])
        if state.get("strata"):
            monitor._strata = Strata.from_plain(state["strata"], policy.max_cohorts)
        monitor._weather = Weather.from_plain(state.get("weather") or {})
        monitor._stable_seen = state.get("stable_seen", monitor._bucket)
        if state.get("ahead"):
            monitor._ahead.restore(state["ahead"], monitor.service)
        if state.get("rollout"):
            monitor.rollout = RolloutRun.from_dict(state["rollout"])
            monitor.measure_ramp = True
        monitor._restored()
        if state.get("evaluations"):
            lane = cls.from_bytes(base64.b64decode(state["evaluations"]), lane_policy(policy),
                                  dedupe_cap=dedupe_cap)
            lane.slow = frozenset()
            monitor.evaluations = lane
        if "clips" in state:
            monitor._clips = {name: (lo, hi) for name, (lo, hi) in state["clips"].items()}
        else:  # written before clips were stored
            monitor._update_clips()
        return monitor

    def __repr__(self) -> str:
        cand = self.candidate.release if self.candidate else None
        when = "-" if self._bucket < 0 else f"{self._bucket * self.policy.bucket_seconds:.0f}"
        return (f"ServiceMonitor({self.service!r}, stable={self.stable!r}, "
                f"candidate={cand!r}, t={when})")


def state_size(monitor: ServiceMonitor) -> int:
    """Bytes of a monitor's serialised state (what a Faust table row costs)."""
    return len(monitor.to_bytes())


