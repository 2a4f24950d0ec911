"""Scenario events as the OpenTelemetry Collector's kafka exporter writes them, for the
worker's end-to-end tests: each event one GenAI span (its latency and error) and one
evaluation result (its hallucination), many services per message, sent with no key."""

from __future__ import annotations

import random
from collections.abc import Iterable
from hashlib import blake2b
from typing import Any

from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from rollguard.detectors.blocks import Block, block_as_events
from rollguard.detectors.policy import default_policy
from rollguard.streams.connect import consumer, producer
from rollguard.streams.otlp.translate import OtlpReader
from rollguard.streams.wire import read_message
from tests.support.otlp import encode, evaluation, genai_span, logs, traces
from tests.support.runs import IsolatedRun, wait_processed

# the topics a worker reads OTLP through, and the ones it writes on from them
OTLP_ROLES = ("otlp_logs", "otlp_spans", "by-service", "commands")
JUDGE = {"service.name": "judge"}  # an evaluator in its own process: names no release


def ids(event: dict[str, Any]) -> tuple[str, str]:
    """The trace and span id of an event's output."""
    text = str(event["event_id"]).encode()
    return (blake2b(text, digest_size=16).hexdigest(),
            blake2b(text, digest_size=8, person=b"span").hexdigest())


def span_of(event: dict[str, Any]) -> tuple[dict[str, Any], Span]:
    trace, span = ids(event)
    metrics = event["metrics"]
    ms = float(metrics["latency_ms"])
    start = int((event["ts"] - ms / 1000.0) * 1e9)
    resource = {"service.name": event["service"], "rollguard.release": event["release"]}
    return resource, genai_span(trace, span, start=start, ms=ms,
                                failed=metrics["error"] == 1.0)


def evaluation_of(event: dict[str, Any], joined: bool) -> tuple[dict[str, Any], LogRecord]:
    """The hallucination verdict of an event's output: from a separate evaluator that
    names only the output's span (``joined``), or naming the service and release."""
    trace, span = ids(event)
    label = "fail" if event["metrics"]["hallucination"] == 1.0 else "pass"
    record = evaluation(label=label, trace=trace, span=span, t=int(event["ts"] * 1e9))
    if joined:
        return JUDGE, record
    return {"service.name": event["service"], "rollguard.release": event["release"]}, record


def requests(pairs: list[tuple[dict[str, Any], Any]], signal: str, per_message: int,
             ) -> list[Any]:
    """Export requests of ``per_message`` records each, one resource part per service in
    each, as the Collector's batch processor groups them."""
    out = []
    for i in range(0, len(pairs), per_message):
        by_resource: dict[tuple[tuple[str, Any], ...], list[Any]] = {}
        for resource, record in pairs[i : i + per_message]:
            by_resource.setdefault(tuple(sorted(resource.items())), []).append(record)
        parts = [(dict(key), records) for key, records in by_resource.items()]
        out.append((logs if signal == "logs" else traces)(*parts))
    return out


def otlp_values(events: list[dict[str, Any]], encoding: str, *, joined: bool = True,
                spans: bool = True, per_message: int = 300,
                ) -> dict[str, list[bytes]]:
    """The scenario's messages by signal: spans (if ``spans``) and evaluations, services
    mixed in time order."""
    ordered = sorted(events, key=lambda e: e["ts"])
    found = {"logs": [encode(r, encoding) for r in requests(
        [evaluation_of(e, joined) for e in ordered], "logs", per_message)]}
    if spans:
        found["traces"] = [encode(r, encoding) for r in requests(
            [span_of(e) for e in ordered], "traces", per_message)]
    return found


async def produce_otlp(run: IsolatedRun, values: dict[str, list[bytes]],
                       seed: int = 3) -> None:
    """Send the messages with no key (the exporter's default), the two signals interleaved
    at random: spans and their evaluations arrive in no fixed order."""
    topics = {"logs": run.topic("otlp_logs"), "traces": run.topic("otlp_spans")}
    signals = [signal for signal, found in values.items() for _ in found]
    random.Random(seed).shuffle(signals)
    by_signal = {signal: iter(found) for signal, found in values.items()}
    async with producer(linger_ms=5, max_request_size=2_000_000) as out:
        for signal in signals:  # the signal of each send is random; within a signal, in order
            await out.send(topics[signal], next(by_signal[signal]), key=None)
        await out.flush()


async def produce_live(run: IsolatedRun, values: dict[str, list[bytes]], rounds: int = 8,
                       ) -> None:
    """Send the messages in ``rounds``, each once the worker has read the one before, as a
    live Collector sends them (one signal alone: as a backlog of it, or judges' results
    minutes after their spans, arrive)."""
    for i in range(rounds):
        part = {signal: found[i * len(found) // rounds : (i + 1) * len(found) // rounds]
                for signal, found in values.items()}
        await produce_otlp(run, part, seed=i)
        await wait_processed(run, roles=("otlp_logs", "otlp_spans"))


def expected_ids(values: dict[str, list[bytes]], encoding: str) -> set[str]:
    """The event ids a reader of these messages forwards (spans read first)."""
    reader = OtlpReader(default_policy().opentelemetry)
    found: set[str] = set()
    for signal in ("traces", "logs"):
        for value in values.get(signal, []):
            for items in reader.read(value, encoding, signal, 0.0).items.values():
                found |= item_ids(items)
    return found


def item_ids(items: Iterable[Any]) -> set[str]:
    found: set[str] = set()
    for item, _raw, _error in items:
        if isinstance(item, Block):
            found.update(e.event_id for e in block_as_events(item))
        elif item is not None:
            found.add(item.event_id)
    return found


async def forwarded_ids(run: IsolatedRun) -> list[str]:
    """Every event id on the run's by-service topic so far, repeats included."""
    found: list[str] = []
    topic = run.settings().topic_by_service
    async with consumer(topic, auto_offset_reset="earliest", group_id=None) as into:
        quiet = 0
        while quiet < 5:
            batches = await into.getmany(timeout_ms=200)
            quiet = 0 if batches else quiet + 1
            for messages in batches.values():
                for message in messages:
                    found += sorted(item_ids(read_message(message.value)))
    return found
