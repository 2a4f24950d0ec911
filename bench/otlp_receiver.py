"""``rollguard otlp``: evaluation records accepted per second with durable acknowledgement,
and the latency of a request, at the batch sizes OpenTelemetry senders use.

Run: ``.venv/bin/python -m bench.otlp_receiver --batch 512 2048 8192 --seconds 20``.

How: the real command runs as its own process against the broker of ``KAFKA_BOOTSTRAP``
(topics of its own, deleted after). ``--clients`` concurrent HTTP/1.1 connections each post
the same protobuf ``ExportLogsServiceRequest`` of ``--batch`` evaluation records (the SDK's
batch processor exports at most 512 records, the Collector's batch processor 8,192) one after
another for ``--seconds``; a request counts only when answered 200, which ``rollguard otlp``
sends once every message of it is acknowledged by all in-sync replicas (``acks=all``).
Latency is from sending the request to reading the answer; the server's CPU per record
(from /proc) is the steadier figure on a shared machine. A record is about 340 bytes
(resource, scope, event name, ids, times, five attributes), so 8,192 records exceed a Kafka
message of 1 MB and are written as several. Client and server share the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from pathlib import Path

import aiohttp
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from tests.support.otel import delete_topics, otlp_command
from tests.support.ports import free_port


def body(records: int) -> bytes:
    request = ExportLogsServiceRequest()
    resource = request.resource_logs.add()
    for key, value in (("service.name", "support-bot"), ("rollguard.release", "v2"),
                       ("service.instance.id", str(uuid.uuid4()))):
        resource.resource.attributes.add(key=key).value.string_value = value
    scope = resource.scope_logs.add()
    scope.scope.name = "rollguard.eval"
    now = time.time_ns()
    for number in range(records):
        record = scope.log_records.add(event_name="gen_ai.evaluation.result",
                                       time_unix_nano=now + number,
                                       observed_time_unix_nano=now + number,
                                       trace_id=uuid.uuid4().bytes, span_id=uuid.uuid4().bytes[:8])
        for key, text in (("gen_ai.evaluation.name", "hallucination"),
                          ("gen_ai.evaluation.score.label", "pass"),
                          ("gen_ai.response.id", f"chatcmpl-{uuid.uuid4().hex}"),
                          ("gen_ai.evaluation.explanation", "grounded in the retrieved passage")):
            record.attributes.add(key=key).value.string_value = text
        record.attributes.add(key="gen_ai.evaluation.score.value").value.double_value = 0.93
    return request.SerializeToString()


async def client(url: str, payload: bytes, until: float, latencies: list[float]) -> int:
    """Post ``payload`` until ``until``; the count of requests answered 200."""
    accepted = 0
    headers = {"Content-Type": "application/x-protobuf"}
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < until:
            started = time.perf_counter()
            async with session.post(url, data=payload, headers=headers) as answer:
                await answer.read()
                if answer.status != 200:
                    raise RuntimeError(f"answered {answer.status}")
            latencies.append(time.perf_counter() - started)
            accepted += 1
    return accepted


def cpu_seconds(pid: int) -> float:
    """User and system CPU time the process ``pid`` used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(url: str, pid: int, records: int, clients: int,
                  seconds: float) -> dict[str, float]:
    payload = body(records)
    await client(url, payload, time.monotonic() + 2.0, [])  # warm: connections, topics
    latencies: list[float] = []
    cpu, started = cpu_seconds(pid), time.monotonic()
    counts = await asyncio.gather(*(client(url, payload, started + seconds, latencies)
                                    for _ in range(clients)))
    elapsed, cpu = time.monotonic() - started, cpu_seconds(pid) - cpu
    cuts = statistics.quantiles(latencies, n=100)
    return {"records": records, "bytes": len(payload), "requests": sum(counts),
            "records_s": sum(counts) * records / elapsed, "p50_ms": cuts[49] * 1000,
            "p99_ms": cuts[98] * 1000, "cpu_us": cpu / (sum(counts) * records) * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[512, 2048, 8192])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--by-trace", nargs="+", default=["false", "true"],
                        choices=["false", "true"],
                        help="ROLLGUARD_OTLP_BY_TRACE values, measured one after another")
    options = parser.parse_args()
    rows = {setting: run_server(options, setting) for setting in options.by_trace}
    if len(rows) == 2:
        for before, after in zip(rows["false"], rows["true"], strict=True):
            print(f"by trace / not, {before['records']:,.0f} records a request: CPU a record "
                  f"{after['cpu_us'] / before['cpu_us']:.2f}x, records/s "
                  f"{after['records_s'] / before['records_s']:.2f}x")


def run_server(options: argparse.Namespace, by_trace: str) -> list[dict[str, float]]:
    """Measure every batch size against one ``rollguard otlp`` process."""
    port, suffix = free_port(), uuid.uuid4().hex[:8]
    topics = [f"bench-otlp-logs-{suffix}", f"bench-otlp-spans-{suffix}"]
    server = otlp_command({"ROLLGUARD_OTLP_ADDR": f"127.0.0.1:{port}",
                           "ROLLGUARD_TOPIC_OTLP_LOGS": topics[0],
                           "ROLLGUARD_TOPIC_OTLP_SPANS": topics[1],
                           "ROLLGUARD_OTLP_BY_TRACE": by_trace})
    rows = []
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line.startswith("otlp: receiving"):
            raise SystemExit(f"rollguard otlp did not start: {line}")
        print(f"ROLLGUARD_OTLP_BY_TRACE={by_trace}")
        print(f"{'records/request':>15} {'bytes':>9} {'requests':>8} {'records/s':>10} "
              f"{'p50 ms':>7} {'p99 ms':>7} {'server CPU µs/record':>20}")
        for records in options.batch:
            row = asyncio.run(measure(f"http://127.0.0.1:{port}/v1/logs", server.pid, records,
                                      options.clients, options.seconds))
            rows.append(row)
            print(f"{row['records']:>15,.0f} {row['bytes']:>9,.0f} {row['requests']:>8,.0f} "
                  f"{row['records_s']:>10,.0f} {row['p50_ms']:>7.1f} {row['p99_ms']:>7.1f} "
                  f"{row['cpu_us']:>20.2f}", flush=True)
    finally:
        server.terminate()
        server.wait(30)
        delete_topics(topics)
    return rows


if __name__ == "__main__":
    main()
