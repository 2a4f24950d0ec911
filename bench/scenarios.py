"""Seeded event streams for every acceptance case of the default policy.

A :class:`Scenario` is a service with a stable release serving alone for ``deploy_at``
seconds, then a candidate (a canary next to the stable, or a full cutover). One metric of
the candidate may be degraded by ``magnitude`` x its default tolerance: from ``onset``
seconds after the deploy, for ``blip`` seconds only, or creeping in over ``creep`` seconds.
``truth()`` says what a good decider must do and by when.

>>> s = Scenario(seed=1, metric="error", magnitude=2.0, duration=900)
>>> events = list(s.events())
>>> len(events) > 5000, events[0].release, s.truth().expect
(True, 'stable-1', 'rollback')
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import orjson

from rollguard.detectors.events import Event

START = 1_790_000_000.0
STABLE, CANDIDATE = "stable-1", "candidate-2"
METRICS = ("hallucination", "toxicity", "accuracy", "latency_ms", "error", "complaint",
           "cost_usd")
# Healthy levels of the generator, and the default policy's tolerance of each metric.
BASE = {"hallucination": 0.03, "toxicity": 0.005, "accuracy": 0.88, "latency_ms": 600.0,
        "error": 0.005, "complaint": 0.003, "cost_usd": 0.002}
TOLERANCE = {"hallucination": 0.02, "toxicity": 0.01, "accuracy": 0.03, "latency_ms": 0.25,
             "error": 0.01, "complaint": 0.01, "cost_usd": 0.25}


@dataclass(frozen=True)
class Truth:
    """What should happen: ``rollback`` (by ``deadline``) or ``no_rollback``."""

    expect: str
    onset: float | None = None  # event time from which the degradation is >= 2x tolerance
    deadline: float | None = None
    earliest: float | None = None  # a rollback before this (shift <= tolerance/2) is false


@dataclass(frozen=True)
class Cohort:
    """One cohort of a scenario's traffic: its ``share`` of the stable's events and of the
    candidate's (``candidate_share``, None: the same; else a shifted mix), how far its base
    level of the scenario's ``metric`` sits from the default in tolerances (``offset``, on
    both releases), and how much worse the candidate is in it from the onset (``magnitude``,
    in tolerances)."""

    name: str
    share: float
    candidate_share: float | None = None
    offset: float = 0.0
    magnitude: float = 0.0


@dataclass(frozen=True)
class Shock:
    """A common-mode shock: from ``at`` seconds (scenario time) for ``length`` seconds the
    ``metric`` of **both** releases is ``factor`` x its healthy level (an upstream provider's
    errors, a surge that slows every answer): a good decider charges it to neither."""

    metric: str
    at: float
    length: float
    factor: float

    def active(self, t: float) -> bool:
        return self.at <= t < self.at + self.length


@dataclass(frozen=True)
class Scenario:
    seed: int
    rate: float = 2.0  # candidate events per second
    stable_rate: float | None = None  # during a canary; default 4 x rate
    mode: str = "canary"  # or "cutover": the stable stops serving at the deploy
    duration: float = 3600.0
    deploy_at: float = 600.0
    metric: str | None = None
    also: tuple[str, ...] = ()  # further metrics degraded the same way, at the same time
    magnitude: float = 0.0  # in tolerances
    onset: float = 0.0  # seconds after the deploy
    blip: float | None = None  # degradation lasts this long, then recovers
    blips: tuple[float, ...] = ()  # onsets (after deploy) of further blips of the same length
    creep: float | None = None  # seconds to ramp from 0 to magnitude
    heavy_tails: bool = False
    graded: float = 0.5  # share of outputs graded for accuracy (1.0: every event has it)
    load_swing: bool = False
    service: str = "chat"
    cohorts: tuple[Cohort, ...] = ()  # events carry these cohorts (shares add up to 1)
    shocks: tuple[Shock, ...] = ()  # common-mode shocks of both releases
    name: str = field(default="", compare=False)

    def truth(self) -> Truth:
        if self.metric is None or self.magnitude <= 0.5 or self.blip is not None:
            return Truth("no_rollback")
        start = earliest = START + self.deploy_at + self.onset
        if self.creep:
            earliest += self.creep * 0.5 / self.magnitude
            start += self.creep * min(1.0, 2.0 / self.magnitude)
        budget = 480.0 if self.rate >= 2.0 else 1500.0
        return Truth("rollback" if self.magnitude >= 2.0 else "either", start, start + budget,
                     earliest)

    def shift(self, t: float) -> float:
        """Degradation of the candidate at ``t`` seconds after the deploy, in tolerances."""
        if self.metric is None:
            return 0.0
        if self.blip is not None:
            starts = (self.onset, *self.blips)
            return self.magnitude if any(s <= t < s + self.blip for s in starts) else 0.0
        if t < self.onset:
            return 0.0
        if self.creep:
            return self.magnitude * min(1.0, (t - self.onset) / self.creep)
        return self.magnitude

    def load(self, t: float) -> float:
        """Traffic multiplier: 1, or a swing between 0.3 and 1.7 with a 40-minute period."""
        return 1.0 + 0.7 * math.sin(2 * math.pi * t / 2400.0) if self.load_swing else 1.0

    def events(self) -> Iterator[Event]:
        """The events in time order (the generator is deterministic for a seed)."""
        rng = random.Random(self.seed)
        stable_rate = self.stable_rate if self.stable_rate is not None else 4 * self.rate
        t, serial = 0.0, 0
        while t < self.duration:
            deployed = t >= self.deploy_at
            load = self.load(t)
            s_rate = stable_rate if deployed else stable_rate + self.rate
            if deployed and self.mode == "cutover":
                s_rate = 0.0
            total = (s_rate + (self.rate if deployed else 0.0)) * load
            t += rng.expovariate(total)
            if t >= self.duration:
                break
            serial += 1
            is_candidate = deployed and rng.random() * (s_rate + self.rate) >= s_rate
            degrade = self.shift(t - self.deploy_at) if is_candidate else 0.0
            cohort = ""
            if self.cohorts:
                cohort, offset = self._cohort(rng, is_candidate, t - self.deploy_at)
                degrade += offset
            yield Event(f"{self.service}-{self.seed}-{serial}", START + t, self.service,
                        CANDIDATE if is_candidate else STABLE, cohort,
                        self._metrics(rng, degrade, load, self._shock(t)))

    def _cohort(self, rng: random.Random, is_candidate: bool, t: float) -> tuple[str, float]:
        # The cohort of one event, drawn by its release's mix, and its metric's shift.
        u, total = rng.random(), 0.0
        for cohort in self.cohorts:
            share = cohort.share
            if is_candidate and cohort.candidate_share is not None:
                share = cohort.candidate_share
            total += share
            if u < total:
                break
        worse = cohort.magnitude if is_candidate and t >= self.onset else 0.0
        return cohort.name, cohort.offset + worse

    def _shock(self, t: float) -> dict[str, float]:
        return {s.metric: s.factor for s in self.shocks if s.active(t)} if self.shocks else {}

    def _metrics(self, rng: random.Random, degrade: float, load: float,
                 shock: dict[str, float]) -> dict[str, float]:
        d = dict.fromkeys(METRICS, 0.0)
        base = {**BASE, **{m: BASE[m] * f for m, f in shock.items()}} if shock else BASE
        if self.metric is not None:
            for name in (self.metric, *self.also):
                d[name] = degrade
        tol = TOLERANCE
        m = {
            "hallucination": float(rng.random() < base["hallucination"]
                                   + d["hallucination"] * tol["hallucination"]),
            "toxicity": (rng.uniform(0.5, 1.0) if rng.random() < base["toxicity"]
                         + d["toxicity"] * tol["toxicity"] else rng.uniform(0.0, 0.3)),
            "error": float(rng.random() < base["error"] + d["error"] * tol["error"]),
            "complaint": float(rng.random() < base["complaint"]
                               + d["complaint"] * tol["complaint"]),
        }
        latency = base["latency_ms"] * math.exp(rng.gauss(0.0, 0.5))
        latency *= (1 + d["latency_ms"] * tol["latency_ms"]) * (1 + 0.3 * (load - 1))
        if self.heavy_tails and rng.random() < 0.003:
            latency *= rng.uniform(10.0, 60.0)  # a rare stall: a few per thousand
        m["latency_ms"] = latency
        cost = base["cost_usd"] * math.exp(rng.gauss(-0.045, 0.3))
        m["cost_usd"] = cost * (1 + d["cost_usd"] * tol["cost_usd"])
        if rng.random() < self.graded:  # by default only half the outputs are graded
            accuracy = rng.gauss(base["accuracy"] - d["accuracy"] * tol["accuracy"], 0.08)
            m["accuracy"] = min(1.0, max(0.0, accuracy))
        return m


def to_lines(events: Iterator[Event] | list[Event]) -> list[bytes]:
    """JSON lines of the events, as a recorder would write them."""
    return [orjson.dumps({"event_id": e.event_id, "ts": e.ts, "service": e.service,
                          "release": e.release, "cohort": e.cohort, "metrics": e.metrics})
            for e in events]


JUNK = (b"not json at all", b"[1, 2, 3]", b'{"event_id": "x", "service": "chat"}',
        b'{"event_id": "y", "ts": 1790000000, "service": "chat", "release": "r", "metrics": 3}',
        b'{"event_id": "z", "ts": "soon", "service": "chat", "release": "r", "metrics": {}}',
        b'{"event_id": "w", "ts": 1790000000, "service": "chat", "release": "r",'
        b' "metrics": {"hallucination": 0.5}}', b'{"ts": NaN}', b"")


def dirty(lines: list[bytes], seed: int, *, invalid: float = 0.05, duplicates: float = 0.03,
          jitter: float = 3.0) -> list[bytes]:
    """Add invalid lines, duplicated events and timestamps out of order by up to ``jitter`` s.

    Jitter moves events by swapping neighbours in the file order, as a collector that merges
    a few streams would; event timestamps themselves are kept.
    """
    rng = random.Random(seed)
    order = sorted(range(len(lines)),
                   key=lambda i: orjson.loads(lines[i])["ts"] + rng.uniform(-jitter, jitter))
    out: list[bytes] = []
    for i in order:
        out.append(lines[i])
        if rng.random() < duplicates:
            out.insert(len(out) - rng.randint(0, min(20, len(out) - 1)), lines[i])
        if rng.random() < invalid / (1 - invalid):
            out.append(rng.choice(JUNK))
    return out


def variant(base: Scenario, **changes: object) -> Scenario:
    """A copy of a scenario with some fields changed."""
    return replace(base, **changes)  # type: ignore[arg-type]


def cohort_scenarios(seed: int) -> list[Scenario]:
    """Cohort cases (error rate, a 5 events/s canary beside 20/s of stable, an hour): a
    shifted mix of cohorts whose base rates differ (the aggregate looks 2 tolerances worse,
    nothing is), different but unchanged base rates, 24 small cohorts, and regressions of one
    cohort of several sizes and shares. Names say which; :func:`cohort_truth` says what must
    happen."""
    base = Scenario(seed, rate=5.0, duration=3600.0, metric="error", onset=300.0)
    mixes = {
        "mix-shift": (Cohort("en", 0.8, 0.3, -0.3), Cohort("ja", 0.2, 0.7, 4.0)),
        "base-rates": (Cohort("en", 0.5, None, -0.3), Cohort("de", 0.3, None, 1.0),
                       Cohort("ja", 0.2, None, 3.0)),
        "many-small": tuple(Cohort(f"c{i:02d}", 1 / 24, None, (i % 5) * 0.3 - 0.3)
                            for i in range(24)),
    }
    for share in (0.1, 0.25):
        for magnitude in (3.0, 6.0):
            mixes[f"cohort-{share:g}-x{magnitude:g}"] = (
                Cohort("en", 1 - share - 0.2, None, -0.3), Cohort("de", 0.2, None, 0.5),
                Cohort("ja", share, None, 1.0, magnitude))
    return [replace(base, cohorts=cohorts, name=name) for name, cohorts in mixes.items()]


def cohort_truth(scenario: Scenario) -> tuple[bool, str | None, bool]:
    """``(rollback_allowed, worse_cohort, must_find)``: a rollback is allowed only where the
    aggregate itself is worse by more than half a tolerance (share x magnitude); no cohort
    but ``worse_cohort`` may be named; it must be found when it is worse by 6 tolerances, or
    by 3 with a quarter of the traffic (at 0.5 events/s, a tenth of this canary, 3 tolerances
    take longer than the hour: ``bench/cohort_quality.py`` counts how often it is found).

    >>> [cohort_truth(s) for s in cohort_scenarios(1)][::3]
    [(False, None, False), (False, 'ja', False), (True, 'ja', True)]
    """
    worse = [c for c in scenario.cohorts if c.magnitude > 0]
    if not worse:
        return False, None, False
    cohort = worse[0]
    must = cohort.magnitude >= 6 or (cohort.magnitude >= 3 and cohort.share >= 0.25)
    return cohort.share * cohort.magnitude > 0.5, cohort.name, must


def healthy_fleet(seed: int, services: int = 300, low: float = 0.2, high: float = 2.0,
                  hours: float = 1.0) -> list[Scenario]:
    """A fleet with nothing wrong: each service at a traffic drawn from ``low``..``high``
    events/s, a candidate on half of it for ``hours``, identical in quality to the stable.

    >>> fleet = healthy_fleet(1, services=3)
    >>> [round(s.rate * 2, 2) for s in fleet], {s.truth().expect for s in fleet}
    ([0.9, 1.33, 1.5], {'no_rollback'})
    """
    rng = random.Random(f"fleet-{seed}")
    fleet = []
    for i in range(services):
        rate = rng.uniform(low, high)
        fleet.append(Scenario(seed * 100_000 + i, rate=rate / 2, stable_rate=rate / 2,
                              duration=600 + hours * 3600, service=f"svc-{i}",
                              name=f"{rate:.3f}"))
    return fleet


SHOCK_METRICS = ("error", "latency_ms", "hallucination", "cost_usd")


def shock_fleet(seed: int, services: int = 100, low: float = 0.1, high: float = 50.0,
                minutes: float = 75.0, factor: tuple[float, float] = (2.0, 20.0),
                length: tuple[float, float] = (60.0, 1200.0),
                metrics: tuple[str, ...] = SHOCK_METRICS) -> list[Scenario]:
    """A healthy fleet, each service hit once by a common-mode shock of both releases.

    Traffic is drawn log-uniform from ``low``..``high`` events/s, the candidate's share from
    1..50 %, the shock's metric, ``factor`` x its level and ``length`` uniformly; the shock
    falls anywhere in the candidate's ``minutes``. Nothing is wrong with any candidate.

    >>> fleet = shock_fleet(1, services=2)
    >>> [s.truth().expect for s in fleet], all(len(s.shocks) == 1 for s in fleet)
    (['no_rollback', 'no_rollback'], True)
    """
    rng = random.Random(f"shock-fleet-{seed}")
    deploy, fleet = 600.0, []
    for i in range(services):
        rate = math.exp(rng.uniform(math.log(low), math.log(high)))
        share = rng.uniform(0.01, 0.5)
        span = rng.uniform(*length)
        at = deploy + rng.uniform(0.0, max(0.0, minutes * 60 - span))
        shock = Shock(rng.choice(metrics), at, span, rng.uniform(*factor))
        fleet.append(Scenario(seed * 100_000 + i, rate=rate * share,
                              stable_rate=rate * (1 - share), duration=deploy + minutes * 60,
                              deploy_at=deploy, service=f"svc-{i}", shocks=(shock,),
                              name=f"{rate:.2f} ev/s {share:.0%} {shock.metric} "
                                   f"x{shock.factor:.1f} {span / 60:.0f} min"))
    return fleet


def burst_fleet(seed: int, services: int = 200) -> list[Scenario]:
    """The acceptance fleet of the time-matched comparison: 0.1-20 events/s, a candidate on
    10-50 % for 75 minutes, each service hit once by a 3-minute error burst of +25 points
    on both releases."""
    fleet = shock_fleet(seed, services, low=0.1, high=20.0, factor=(51.0, 51.0),
                        length=(180.0, 180.0), metrics=("error",))
    rng = random.Random(f"burst-share-{seed}")
    out = []
    for s in fleet:
        total, share = s.rate + (s.stable_rate or 0.0), rng.uniform(0.1, 0.5)
        out.append(replace(s, rate=total * share, stable_rate=total * (1 - share)))
    return out


def cutover_fleet(seed: int, services: int = 12, metric: str = "error",
                  factor: float = 10.0, length: float = 300.0, rate: float = 2.0,
                  regressed: int | None = None) -> list[Scenario]:
    """Services fully cut over to their candidates, all hit at the same moment by one shock
    (``metric`` x ``factor`` for ``length`` s); ``regressed``: that one service's candidate
    also regresses alone (2x the tolerance of ``metric``) from 10 minutes after the shock."""
    rng = random.Random(f"cutover-{seed}")
    at = 600.0 + rng.uniform(300.0, 1200.0)
    fleet = []
    for i in range(services):
        wrong = regressed == i  # from 10 min after the shock: onset counts from the deploy
        fleet.append(Scenario(seed * 100_000 + i, rate=rate * rng.uniform(0.5, 2.0),
                              mode="cutover", duration=at + length + 1800, service=f"svc-{i}",
                              shocks=(Shock(metric, at, length, factor),),
                              metric=metric if wrong else None, magnitude=2.0 if wrong else 0.0,
                              onset=at + length if wrong else 0.0,
                              name="regressed" if wrong else "healthy"))
    return fleet


@dataclass(frozen=True)
class RolloutScenario:
    """A guarded rollout's traffic and candidate: ``rate`` candidate events/s at every step
    beside ``stable_rate`` of the stable (which serves nothing at 100 %), or, with ``total``,
    a service of ``rate`` events/s whose candidate gets the step's share; the candidate is
    worse by ``magnitude`` tolerances on ``metric`` (None: as good as the stable).
    :meth:`truth` says what a good guard must do.

    >>> s = RolloutScenario(seed=3, metric="error", magnitude=1.5)
    >>> s.traffic(25.0), s.shifts(), s.truth()
    ((2.0, 8.0), {'error': 1.5}, 'never_100')
    """

    seed: int
    rate: float = 2.0
    stable_rate: float = 8.0
    total: bool = False
    metric: str | None = None
    magnitude: float = 0.0

    def traffic(self, percent: float) -> tuple[float, float]:
        """(candidate, stable) events/s at a step of ``percent`` (0: before the rollout)."""
        if self.total:
            return self.rate * percent / 100, self.rate * (1 - percent / 100)
        return (self.rate if percent > 0 else 0.0,
                self.stable_rate if percent < 100 else 0.0)

    def shifts(self) -> dict[str, float]:
        return {self.metric: self.magnitude} if self.metric and self.magnitude else {}

    def truth(self) -> str:
        """``reach_100`` (as good as the stable), ``never_100`` (worse by 1.5 tolerances or
        more: it may pass a step in at most 1 % of seeds) or ``either``."""
        if self.metric is None or self.magnitude <= 0.0:
            return "reach_100"
        return "never_100" if self.magnitude >= 1.5 else "either"


def rollout_scenarios(seed: int, count: int, magnitude: float = 0.0,
                      metrics: tuple[str, ...] = METRICS, rate: float = 2.0,
                      stable_rate: float = 8.0, total: bool = False) -> list[RolloutScenario]:
    """``count`` rollouts, the degraded metric taking each of ``metrics`` in turn (none when
    ``magnitude`` is 0).

    >>> [s.metric for s in rollout_scenarios(1, 3, 2.0)]
    ['hallucination', 'toxicity', 'accuracy']
    """
    return [RolloutScenario(seed * 100_000 + k, rate, stable_rate, total,
                            metrics[k % len(metrics)] if magnitude else None, magnitude)
            for k in range(count)]
