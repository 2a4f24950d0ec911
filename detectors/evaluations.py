"""How OpenTelemetry data becomes rollguard metrics: the policy's ``opentelemetry`` section.

An evaluation result (``gen_ai.evaluation.result``) names its evaluator
(``gen_ai.evaluation.name``) and gives a score value, a label, or both. An
:class:`Evaluator` says which metric of the policy that evaluator feeds and how: which way
its score is good (``better``), where a score turns into pass/fail for a rate metric
(``threshold``), and what each label means. Names are compared normalised (lower case,
spaces and hyphens as ``_``), so ``Answer Relevancy`` is ``answer_relevancy``. Common names
have defaults (:data:`DEFAULT_EVALUATORS`) onto the policy's own metrics; GenAI spans give
latency, errors, tokens and, with per-model ``prices``, cost (:class:`SpanMetrics`).

>>> m = otel_mapping({"evaluations": {"judge": {"metric": "accuracy"}}}, STANDARD_METRICS)
>>> m.evaluator("Hallucination").value(None, "FAIL"), m.evaluator("judge").value(0.8, None)
(1.0, 0.8)
>>> m.evaluator("faithfulness").value(0.2, None)  # a faithfulness score below 0.5 fails
1.0
>>> m.evaluator("nobody") is None
True
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rollguard.detectors.errors import ConfigError
from rollguard.detectors.policy_fields import choice, flag, known_only, number

# metric -> (statistic, worse) of the shipped policy, for a Policy built without a document
STANDARD_METRICS: Mapping[str, tuple[str, str]] = {
    "hallucination": ("rate", "higher"), "toxicity": ("share", "higher"),
    "accuracy": ("mean", "lower"), "latency_ms": ("quantile", "higher"),
    "error": ("rate", "higher"), "complaint": ("rate", "higher"), "cost_usd": ("mean", "higher"),
}
# evaluator name -> (metric, which way its score is good)
DEFAULT_EVALUATORS: Mapping[str, tuple[str, str]] = {
    "hallucination": ("hallucination", "lower"),
    "faithfulness": ("hallucination", "higher"),
    "groundedness": ("hallucination", "higher"),
    "toxicity": ("toxicity", "lower"),
    **{name: ("accuracy", "higher") for name in (
        "correctness", "answer_correctness", "accuracy", "relevance", "relevancy",
        "answer_relevancy", "answer_relevance", "helpfulness")},
}
PASS_LABELS = ("pass", "passed", "success", "correct", "relevant", "faithful", "grounded",
               "safe", "not_toxic", "not_hallucinated")
FAIL_LABELS = ("fail", "failed", "failure", "incorrect", "irrelevant", "unfaithful",
               "ungrounded", "unsafe", "toxic", "hallucinated")
_EVALUATOR_KEYS = {"metric", "better", "threshold", "labels"}
_SECTION_KEYS = {"evaluations", "use_defaults", "pass_labels", "fail_labels", "spans",
                 "evaluation_lateness_seconds", "evaluation_metrics"}
# The metrics a GenAI span gives (streams/otlp/translate.py): judged at the spans' pace.
SPAN_METRICS = frozenset({"latency_ms", "error", "input_tokens", "output_tokens", "cost_usd"})
EVALUATION_LATENESS_SECONDS = 1800.0  # judges score an output seconds to many minutes late


def normalize(name: str) -> str:
    """An evaluator name or label as compared: ``" Answer-Relevancy"`` -> ``answer_relevancy``."""
    return name.strip().lower().replace(" ", "_").replace("-", "_")


@dataclass(frozen=True)
class Evaluator:
    """One evaluator's results as values of ``metric``; ``outcomes`` maps a normalised label
    to its value (the pass/fail words and the evaluator's own ``labels``)."""

    metric: str
    better: str
    threshold: float
    labels: Mapping[str, float]
    outcomes: Mapping[str, float]
    binary: bool  # the metric is a rate of 0s and 1s: a score is cut at the threshold
    flip: bool  # the score runs the other way than the metric: 1 - score
    good: float

    def value(self, score: object, label: object) -> float | str:
        """The metric's value for a result, or the reason code it cannot have one."""
        if label is not None and (self.binary or score is None):
            if type(label) is str:
                found = self.outcomes.get(normalize(label))
                if found is not None:
                    return found
            if score is None:
                return "unknown_label"
        if score is None:
            return "missing_score"
        if type(score) not in (float, int) or not math.isfinite(score):  # type: ignore[arg-type]
            return "bad_score"
        assert isinstance(score, int | float)
        if self.binary:
            failed = score < self.threshold if self.better == "higher" else score > self.threshold
            return 1.0 - self.good if failed else self.good
        if self.flip:
            return 1.0 - score if 0 <= score <= 1 else "score_out_of_range"
        return float(score)


@dataclass(frozen=True)
class ModelPrice:
    """US dollars per million input and output tokens of a model."""

    input: float
    output: float


@dataclass(frozen=True)
class SpanMetrics:
    """Which GenAI spans give operational metrics (``operations``: empty for all) and the
    per-model prices that turn tokens into ``cost_usd`` (a model name matches a price's
    name exactly or starts with it; the longest such name wins)."""

    enabled: bool = True
    operations: tuple[str, ...] = ()
    prices: Mapping[str, ModelPrice] = field(default_factory=dict)

    def price(self, model: str) -> ModelPrice | None:
        """The price of ``model``, or None when the policy names none."""
        found = self.prices.get(model)
        if found is None:
            names = [name for name in self.prices if model.startswith(name)]
            if names:
                found = self.prices[max(names, key=len)]
        return found


@dataclass(frozen=True)
class OtelMapping:
    """The ``opentelemetry`` section of a policy, defaults resolved."""

    evaluators: Mapping[str, Evaluator]
    pass_labels: tuple[str, ...] = PASS_LABELS
    fail_labels: tuple[str, ...] = FAIL_LABELS
    spans: SpanMetrics = SpanMetrics()
    # The metrics judged on the evaluations' own clock (detectors.lanes), and how far behind
    # that clock a result may come and still count.
    evaluation_metrics: tuple[str, ...] = ()
    evaluation_lateness_seconds: float = EVALUATION_LATENESS_SECONDS

    def evaluator(self, name: str) -> Evaluator | None:
        """The evaluator of that name (compared normalised), None for an unknown one."""
        found = self.evaluators.get(name)
        return found if found is not None else self.evaluators.get(normalize(name))


def otel_mapping(raw: object, metrics: Mapping[str, tuple[str, str]],
                 groups: Iterable[Iterable[str]] = ()) -> OtelMapping:
    """Check a policy's ``opentelemetry`` section (None: all defaults) against its metrics
    (name -> (statistic, worse)) and the groups of metrics judged together (composites);
    a :class:`ConfigError` names the field."""
    where = "opentelemetry."
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError("opentelemetry: must be a table of settings")
    known_only(raw, _SECTION_KEYS, where)
    pass_labels = _words(raw, "pass_labels", PASS_LABELS)
    fail_labels = _words(raw, "fail_labels", FAIL_LABELS)
    both = sorted(set(pass_labels) & set(fail_labels))
    if both:
        raise ConfigError(f"{where}fail_labels: {both[0]!r} is also a pass label")
    entries: dict[str, Any] = {}
    if flag(raw, "use_defaults", where, True):
        entries = {name: {"metric": metric, "better": better}
                   for name, (metric, better) in DEFAULT_EVALUATORS.items() if metric in metrics}
    given = raw.get("evaluations", {})
    if not isinstance(given, Mapping):
        raise ConfigError(f"{where}evaluations: must be a table of evaluator names")
    entries.update({normalize(str(name)): value for name, value in given.items()})
    evaluators = {name: _evaluator(name, value, metrics, pass_labels, fail_labels)
                  for name, value in entries.items()}
    lateness = number(raw, "evaluation_lateness_seconds", where, EVALUATION_LATENESS_SECONDS,
                      high=86400.0)
    lane = _evaluation_metrics(raw, evaluators, metrics, groups)
    return OtelMapping(evaluators, pass_labels, fail_labels, _spans(raw.get("spans", {})),
                       lane, lateness)


def _evaluation_metrics(raw: Mapping[str, Any], evaluators: Mapping[str, Evaluator],
                        metrics: Mapping[str, Any], groups: Iterable[Iterable[str]]
                        ) -> tuple[str, ...]:
    # The metrics judged on the evaluations' clock: as listed, else those an evaluator feeds
    # that no span gives; a group (composite) with one of them is judged there whole.
    given = raw.get("evaluation_metrics")
    if given is None:
        names = {e.metric for e in evaluators.values()} - SPAN_METRICS
    elif isinstance(given, list) and all(isinstance(n, str) for n in given):
        unknown = [n for n in given if n not in metrics]
        if unknown:
            raise ConfigError(f"opentelemetry.evaluation_metrics: {unknown[0]!r} is not a "
                              "metric of this policy")
        names = set(given)
    else:
        raise ConfigError("opentelemetry.evaluation_metrics: must be a list of metric names, "
                          f"got {given!r}")
    members = [set(group) for group in groups]
    grown = True
    while grown:
        grown = False
        for group in members:
            if group & names and not group <= names:
                names |= group
                grown = True
    return tuple(sorted(names))


def _words(raw: Mapping[str, Any], key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = raw.get(key, list(default))
    if not isinstance(value, list) or not all(isinstance(w, str) and w.strip() for w in value):
        raise ConfigError(f"opentelemetry.{key}: must be a list of words, got {value!r}")
    return tuple(dict.fromkeys(normalize(w) for w in value))


def _evaluator(name: str, raw: object, metrics: Mapping[str, tuple[str, str]],
               pass_labels: tuple[str, ...], fail_labels: tuple[str, ...]) -> Evaluator:
    where = f"opentelemetry.evaluations.{name}."
    if not isinstance(raw, Mapping):
        raise ConfigError(f"opentelemetry.evaluations.{name}: must be a table of settings")
    known_only(raw, _EVALUATOR_KEYS, where)
    metric = raw.get("metric")
    if not isinstance(metric, str) or metric not in metrics:
        raise ConfigError(f"{where}metric: {metric!r} is not a metric of this policy")
    statistic, worse = metrics[metric]
    good = 0.0 if worse == "higher" else 1.0
    better = choice(raw, "better", where, "lower" if worse == "higher" else "higher",
                    ("higher", "lower"))
    labels = raw.get("labels", {})
    if not isinstance(labels, Mapping) or not all(
            type(v) in (int, float) and math.isfinite(v) for v in labels.values()):
        raise ConfigError(f"{where}labels: must map labels to numbers, got {labels!r}")
    given = {normalize(str(k)): float(v) for k, v in labels.items()}
    outcomes = {**dict.fromkeys(pass_labels, good), **dict.fromkeys(fail_labels, 1.0 - good),
                **given}
    return Evaluator(metric=str(metric), better=better,
                     threshold=number(raw, "threshold", where, 0.5, low=-math.inf),
                     labels=given, outcomes=outcomes, binary=statistic == "rate",
                     flip=(better == "higher") == (worse == "higher"), good=good)


def _spans(raw: object) -> SpanMetrics:
    where = "opentelemetry.spans."
    if not isinstance(raw, Mapping):
        raise ConfigError("opentelemetry.spans: must be a table of settings")
    known_only(raw, {"enabled", "operations", "prices"}, where)
    operations = raw.get("operations", "all")
    if operations == "all":
        operations = []
    if not isinstance(operations, list) or not all(isinstance(o, str) and o for o in operations):
        raise ConfigError(f"{where}operations: must be 'all' or a list of operation names, "
                          f"got {operations!r}")
    prices = raw.get("prices", {})
    if not isinstance(prices, Mapping):
        raise ConfigError(f"{where}prices: must map model names to prices")
    return SpanMetrics(flag(raw, "enabled", where, True), tuple(operations),
                       {str(model): _price(str(model), value) for model, value in prices.items()})


def _price(model: str, raw: object) -> ModelPrice:
    where = f"opentelemetry.spans.prices.{model}."
    if not isinstance(raw, Mapping):
        raise ConfigError(f"opentelemetry.spans.prices.{model}: must be a table with input "
                          "and output (USD per million tokens)")
    known_only(raw, {"input", "output"}, where)
    for key in ("input", "output"):
        if key not in raw:
            raise ConfigError(f"{where}{key}: is required (USD per million tokens)")
    return ModelPrice(number(raw, "input", where, 0.0, strict_low=False),
                      number(raw, "output", where, 0.0, strict_low=False))


def mapping_document(mapping: OtelMapping) -> dict[str, Any]:
    """The section as a policy file would hold it, every evaluator written out (so it reads
    back to the same mapping with ``use_defaults: false``)."""
    spans = mapping.spans
    return {
        "evaluation_metrics": list(mapping.evaluation_metrics),
        "evaluation_lateness_seconds": mapping.evaluation_lateness_seconds,
        "use_defaults": False,
        "pass_labels": list(mapping.pass_labels),
        "fail_labels": list(mapping.fail_labels),
        "evaluations": {name: {"metric": e.metric, "better": e.better,
                               "threshold": e.threshold, "labels": dict(e.labels)}
                        for name, e in mapping.evaluators.items()},
        "spans": {"enabled": spans.enabled, "operations": list(spans.operations) or "all",
                  "prices": {model: {"input": p.input, "output": p.output}
                             for model, p in spans.prices.items()}},
    }
