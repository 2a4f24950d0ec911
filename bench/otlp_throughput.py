"""OTLP records judged per second by one worker, end to end, against the same evaluations
sent as our own event objects, in one run.

    .venv/bin/python -m bench.otlp_throughput --messages 1000 --records 300 --services 50

OTLP: ``--messages`` Collector-shaped messages, each an ``ExportLogsServiceRequest`` of
``--records`` ``gen_ai.evaluation.result`` log records (score, label, trace and span ids, a
response id; the release on each resource) of ``--services`` services, encoded
``otlp_proto`` and sent with no key (the exporter's defaults) to the run's ``otlp_logs``
topic. The worker reads them, forwards each service's events as blocks to the by-service
topic and judges them there: it is done when its group has committed the end of the OTLP
topic (a message is acknowledged only once its forwards are in Kafka) and the end of the
by-service topic as it then stands.

Ours: the same evaluations as event objects (the goal's comparison) and as blocks (what
the worker forwards, so the difference is the OTLP read plus the hop through the by-service
topic), one message per service per Collector message, keyed by the service, on the
events topic. Each backlog is loaded into its own run's topics, then one worker consumes it;
records/s and the worker's CPU per record are measured from its first committed progress
to the end (:func:`bench.kafka_harness.time_consumer`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
from collections.abc import Iterator
from typing import Any

from bench.fleet_throughput import Loaded, load
from bench.kafka_harness import LAYOUTS, end_offsets, prepare, time_consumer
from rollguard.streams.settings import DEFAULT_CHECKPOINT_S
from tests.support.otlp import T0, evaluation, logs
from tests.support.runs import IsolatedRun

NAMES = ("hallucination", "toxicity", "answer_relevancy", "faithfulness")
METRICS = {"hallucination": "hallucination", "toxicity": "toxicity"}  # else accuracy


def collector_message(rng: random.Random, records: int, services: int, n: int
                      ) -> tuple[bytes, list[dict[str, Any]]]:
    """One serialized logs request and the same evaluations as our event dicts."""
    by_service: dict[int, list[Any]] = {}
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
        ours.append({"event_id": f"{trace}{span}", "ts": t / 1e9, "service": f"svc-{s}",
                     "release": "v2", "metrics": {METRICS.get(name, "accuracy"): round(score)}})
    request = logs(*(({"service.name": f"svc-{s}", "rollguard.release": "v2"}, part)
                     for s, part in by_service.items()))
    return request.SerializeToString(), ours


def ours_messages(events: list[dict[str, Any]], layout: str
                  ) -> Iterator[tuple[bytes, bytes, int]]:
    """``(key, value, events)``: one message per service, as its emitter would send them."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        groups.setdefault(event["service"], []).append(event)
    for service, group in groups.items():
        yield service.encode(), LAYOUTS[layout](group), len(group)


async def consume(run: IsolatedRun, topic: str, loaded: Loaded, checkpoint_s: float,
                  also: dict[str, int | None] | None = None) -> tuple[int, float, float]:
    """Records, wall and CPU seconds of one worker on the run's backlog of ``topic``."""
    ends = await end_offsets(topic, run.partitions)
    worker = run.start_worker(None, ROLLGUARD_CHECKPOINT_S=str(checkpoint_s))
    timed = await time_consumer(worker, run.app_id, topic, ends, also=also)
    _messages, records = loaded.between(timed.first, ends)
    return records, timed.wall, timed.cpu


async def measure_otlp(values: list[bytes], records: int, checkpoint_s: float
                       ) -> tuple[int, float, float]:
    run = IsolatedRun.new("bench-otlp")
    await prepare(run)
    try:
        topic = run.topic("otlp_logs")
        loaded = await load(topic, ((None, value, records)  # type: ignore[misc]
                                    for value in values))
        also: dict[str, int | None] = {run.settings().topic_by_service: None}
        return await consume(run, topic, loaded, checkpoint_s, also)
    finally:
        await run.delete_topics()


async def measure_ours(events: list[list[dict[str, Any]]], layout: str, checkpoint_s: float
                       ) -> tuple[int, float, float]:
    run = IsolatedRun.new("bench-otlp-ours")
    await prepare(run)
    try:
        topic = run.topic("events")
        loaded = await load(topic, (m for batch in events for m in ours_messages(batch, layout)))
        return await consume(run, topic, loaded, checkpoint_s)
    finally:
        await run.delete_topics()


def report(label: str, records: int, wall: float, cpu: float) -> float:
    per_record = cpu / records * 1e6
    print(f"| {label} | {records:,} | {records / wall:,.0f} | {records / cpu:,.0f} | "
          f"{per_record:.1f} |")
    return per_record


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000, help="Collector messages")
    parser.add_argument("--records", type=int, default=300, help="per Collector message")
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--layout", default="objects,blocks",
                        help=f"our own messages' layouts, comma-separated, of {', '.join(LAYOUTS)}")
    parser.add_argument("--checkpoint-s", type=float, default=1.0,
                        help=f"the worker's (deployments: {DEFAULT_CHECKPOINT_S:g}); with a "
                        "backlog this small a longer one leaves no committed progress to time")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    made = [collector_message(rng, args.records, args.services, n) for n in range(args.messages)]
    values, events = [value for value, _ in made], [ours for _, ours in made]
    print(f"machine: {platform.machine()}, {platform.python_version()}, cores={os.cpu_count()}; "
          f"{args.messages} messages x {args.records} records, {args.services} services, "
          f"{sum(map(len, values)) / len(values) / 1000:.0f} kB per OTLP message; "
          f"checkpoint every {args.checkpoint_s:g} s")
    otlp = await measure_otlp(values, args.records, args.checkpoint_s)
    ours = {layout: await measure_ours(events, layout, args.checkpoint_s)
            for layout in args.layout.split(",")}
    print("| input | records timed | records/s | records per CPU second | CPU µs per record |")
    print("| --- | ---: | ---: | ---: | ---: |")
    cost = report("OTLP logs, otlp_proto, keyless (read, forwarded, judged)", *otlp)
    for layout, measured in ours.items():
        own = report(f"ours: {layout}, a message per service", *measured)
        print(f"CPU per record, OTLP / ours ({layout}): {cost / own:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
