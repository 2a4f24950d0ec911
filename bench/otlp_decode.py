"""Records per second of reading OTLP (:mod:`rollguard.streams.otlp`) alone, against
``streams.wire.read_message`` on the same evaluations as our own messages, in one run; and
the evaluator join's memory per remembered output.

    .venv/bin/python -m bench.otlp_decode --batches 40 --records 300 --services 50

Collector-shaped batches: one message of ``--records`` evaluation log records (each with a
score, a label and trace/span ids; the release on each resource) of ``--services``
services, as ``otlp_proto`` and ``otlp_json``; a traces batch of as many GenAI spans. Our
own: the same evaluations as one message per service, as blocks (what the emitter sends)
and as arrays of event objects. CPU time (process_time), best of ``--repeats``.
"""

from __future__ import annotations

import argparse
import random
import time
import tracemalloc
from collections.abc import Callable, Iterable
from typing import Any

from rollguard.detectors.blocks import Block
from rollguard.detectors.monitors import Item
from rollguard.detectors.policy import default_policy
from rollguard.streams.otlp.join import Join, Output
from rollguard.streams.otlp.translate import OtlpReader
from rollguard.streams.wire import encode_batch, encode_blocks, read_message
from tests.support.otlp import T0, encode, evaluation, genai_span, logs, traces

NAMES = ("hallucination", "toxicity", "answer_relevancy", "faithfulness")


def batch(rng: random.Random, records: int, services: int, n: int) -> tuple[Any, Any, list]:
    """One logs request, one traces request and the same evaluations as event dicts."""
    by_service: dict[int, list[Any]] = {}
    spans: dict[int, list[Any]] = {}
    ours: list[dict[str, Any]] = []
    for i in range(records):
        s = rng.randrange(services)
        trace, span = f"{n:08x}{i:024x}", f"{n:04x}{i:012x}"
        name = NAMES[i % len(NAMES)]
        score = rng.random()
        t = T0 + (n * records + i) * 1_000_000
        by_service.setdefault(s, []).append(evaluation(
            name, score=score, label="pass" if score < 0.5 else "fail", trace=trace, span=span,
            t=t, gen_ai__response__id=f"chatcmpl-{n}-{i}"))
        spans.setdefault(s, []).append(genai_span(trace, span, start=t, ms=rng.uniform(100, 900),
                                                  gen_ai__usage__input_tokens=900,
                                                  gen_ai__usage__output_tokens=150))
        metric = {"hallucination": "hallucination", "toxicity": "toxicity"}.get(name, "accuracy")
        ours.append({"event_id": f"{trace}{span}", "ts": t / 1e9, "service": f"svc-{s}",
                     "release": "v2", "metrics": {metric: round(score)}})
    resource = {"service.name": "", "rollguard.release": "v2"}
    return (logs(*(({**resource, "service.name": f"svc-{s}"}, recs)
                   for s, recs in by_service.items())),
            traces(*(({**resource, "service.name": f"svc-{s}"}, sp)
                     for s, sp in spans.items())), ours)


def per_service(events: list[dict[str, Any]], encoder: Callable[[Any], bytes]) -> list[bytes]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        groups.setdefault(event["service"], []).append(event)
    return [encoder(group) for group in groups.values()]


def counted(items: Iterable[Item]) -> int:
    """The valid events among items."""
    return sum(len(item) if isinstance(item, Block) else 1
               for item, _raw, _error in items if item is not None)


def best(repeats: int, run: Callable[[], int]) -> tuple[float, int]:
    fastest, count = float("inf"), 0
    for _ in range(repeats):
        start = time.process_time()
        count = run()
        fastest = min(fastest, time.process_time() - start)
    return fastest, count


def join_bytes_per_entry(entries: int) -> float:
    join: Join[Any] = Join(window_s=1e9, max_entries=entries, max_held=1)
    outputs = [Output(f"svc-{i % 50}", "v2", None, 1.7e9 + i) for i in range(entries)]
    keys = [(f"{i:016x}", f"r:chatcmpl-{i:020d}") for i in range(entries)]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(entries):
        join.remember(keys[i], outputs[i], float(i))
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return used / entries  # keys and outputs were made before: what the join itself holds


def main(args: argparse.Namespace) -> None:
    rng = random.Random(1)
    batches = [batch(rng, args.records, args.services, n) for n in range(args.batches)]
    policy = default_policy()
    rows = []
    for encoding in ("otlp_proto", "otlp_json"):
        for signal, index in (("logs", 0), ("traces", 1)):
            values = [encode(b[index], encoding) for b in batches]
            size = sum(map(len, values)) / len(values)

            def run(values: list[bytes] = values, signal: str = signal,
                    encoding: str = encoding) -> int:
                reader = OtlpReader(policy.opentelemetry)
                return sum(counted(item for group in reader.read(v, encoding, signal, 0.0)
                                   .items.values() for item in group) for v in values)
            label = f"{encoding} {signal} ({size / 1000:.0f} kB/message)"
            rows.append((label, *best(args.repeats, run)))
    for label, encoder in (("ours: blocks, a message per service", encode_blocks),
                           ("ours: event objects, a message per service", encode_batch)):
        values = [v for b in batches for v in per_service(b[2], encoder)]

        def ours(values: list[bytes] = values) -> int:
            return sum(counted(read_message(v)) for v in values)
        rows.append((label, *best(args.repeats, ours)))
    print(f"{args.batches} batches x {args.records} records, {args.services} services; "
          f"best of {args.repeats}, CPU seconds")
    print("| input | events | records/s | µs per record |")
    print("| --- | ---: | ---: | ---: |")
    for label, seconds, count in rows:
        print(f"| {label} | {count} | {count / seconds:,.0f} | {seconds / count * 1e6:.2f} |")
    print(f"join memory per remembered output (span id + response id keys): "
          f"{join_bytes_per_entry(args.join_entries):.0f} bytes "
          f"({args.join_entries} outputs)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--records", type=int, default=300)
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--join-entries", type=int, default=100_000)
    main(parser.parse_args())
