"""Two processes instrumented with the real OpenTelemetry Python SDK, for the end-to-end test
of the whole chain (tests/integration/test_otel_chain_e2e.py):

- ``service``: LLM services that follow their version pointers (``PointerReader``) and make
  one GenAI span per output (``rollguard.release`` set right after ``resolve``, the
  response id, the latency, the tokens), exported over OTLP/HTTP; each output is also one
  JSON line on stdout, for the evaluator.
- ``evaluator``: reads those lines on stdin and emits one ``gen_ai.evaluation.result``
  log record per output from its own resource: inside the output's span context (every
  other output) or naming only its ``gen_ai.response.id``.

Both run until SIGTERM (the evaluator also until its stdin ends), flush their exporters,
and print how many spans or records they made, by service, as one JSON line on stderr.

    python -m tests.support.otel_chain service URL RATE BAD_SERVICE GOOD_SERVICE
    python -m tests.support.otel_chain evaluator URL
"""

from __future__ import annotations

import asyncio
import random
import signal
import sys
import time
import uuid
from collections import Counter
from typing import Any

import orjson
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from rollguard.actions.reader import PointerReader
from rollguard.base.config import redis_url
from rollguard.cli import run_until_stopped
from rollguard.demo.otel import EVENT, logger_provider, tracer_provider

UNSUPPORTED = "unsupported claim"  # in an answer: the evaluator judges it a hallucination


def answer(service_regresses: bool, release: str, rng: random.Random) -> str:
    """The output's text: the regressing service's v2 makes unsupported claims 40 % of the
    time, every other release 4 %."""
    rate = 0.40 if service_regresses and release == "v2" else 0.04
    return UNSUPPORTED if rng.random() < rate else "grounded answer"


def one_output(tracer: trace.Tracer, reader: PointerReader, regresses: bool,
               rng: random.Random) -> dict[str, Any]:
    """One output's span; what the evaluator needs to know of it."""
    latency_ns = int((350.0 + rng.lognormvariate(5.0, 0.6)) * 1e6)
    response = uuid.uuid4().hex
    span = tracer.start_span("chat llm-1", start_time=time.time_ns() - latency_ns, attributes={
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "llm-1"})
    release, _components = reader.resolve(f"user-{rng.randrange(50_000)}")
    span.set_attribute("rollguard.release", release)
    span.set_attributes({"gen_ai.response.id": response,
                         "gen_ai.usage.input_tokens": rng.randrange(200, 400),
                         "gen_ai.usage.output_tokens": rng.randrange(50, 150)})
    span.end()
    context = span.get_span_context()
    return {"trace": f"{context.trace_id:032x}", "span": f"{context.span_id:016x}",
            "response": response,
            "answer": answer(regresses, release, rng)}


async def serve(endpoint: str, rate: float, services: dict[str, bool]) -> None:
    """``rate`` outputs a second of each service until cancelled (SIGTERM)."""
    rng = random.Random(5)
    providers = {s: tracer_provider(s, endpoint) for s in services}
    readers = {s: PointerReader(redis_url(), s) for s in services}
    made: Counter[str] = Counter()
    try:
        for reader in readers.values():
            await reader.start()
        started = time.monotonic()
        while True:
            due = int((time.monotonic() - started) * rate)
            for service, regresses in services.items():
                tracer = providers[service].get_tracer("chain.service")
                while made[service] < due:
                    line = one_output(tracer, readers[service], regresses, rng)
                    sys.stdout.write(orjson.dumps({**line, "service": service}).decode() + "\n")
                    made[service] += 1
            sys.stdout.flush()
            await asyncio.sleep(0.02)
    finally:
        for reader in readers.values():
            await reader.stop()
        for provider in providers.values():
            provider.shutdown()  # exports what is still queued
        sys.stderr.write(orjson.dumps(dict(made)).decode() + "\n")


def evaluate(endpoint: str) -> None:
    """One evaluation result per line of stdin, until it ends or SIGTERM."""
    provider = logger_provider("judge", endpoint)  # its own resource, not the service's
    logger = provider.get_logger("chain.evaluator")
    made: Counter[str] = Counter()

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        for number, text in enumerate(sys.stdin):
            output = orjson.loads(text)
            attributes: dict[str, Any] = {
                "gen_ai.evaluation.name": "hallucination",
                "gen_ai.evaluation.score.label": "fail" if output["answer"] == UNSUPPORTED
                else "pass",
                "gen_ai.evaluation.score.value": float(output["answer"] == UNSUPPORTED)}
            context = None
            if number % 2:  # names only the output's response id
                attributes["gen_ai.response.id"] = output["response"]
            else:  # inside the output's span context: the record carries its ids
                parent = SpanContext(int(output["trace"], 16), int(output["span"], 16),
                                     is_remote=True,
                                     trace_flags=TraceFlags(TraceFlags.SAMPLED))
                context = trace.set_span_in_context(NonRecordingSpan(parent))
            logger.emit(event_name=EVENT, context=context, attributes=attributes)
            made[output["service"]] += 1
    finally:
        provider.shutdown()
        sys.stderr.write(orjson.dumps(dict(made)).decode() + "\n")


def main(argv: list[str]) -> None:
    if argv[0] == "service":
        endpoint, rate, bad, good = argv[1:5]
        run_until_stopped(lambda: serve(endpoint, float(rate), {bad: True, good: False}))
    else:
        evaluate(argv[1])


if __name__ == "__main__":
    main(sys.argv[1:])
