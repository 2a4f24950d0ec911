"""`rollguard replay` of the OTLP topics as recorded in ``otlp_json`` (one export request a
line, as the Collector's file exporter writes and kcat prints them): the same decisions as
the worker makes of what it forwards, the regression rolled back, the healthy service not,
bad records counted by reason and evaluations never joined to an output reported."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from rollguard.analysis.replay import Replay
from rollguard.cli import main
from rollguard.demo.scenario import Scenario
from rollguard.detectors.decision import Decision
from rollguard.detectors.policy import default_policy
from rollguard.streams.otlp.loop import OtlpLoop
from tests.support.e2e import scenario_events
from tests.support.otlp import encode, evaluation, logs
from tests.support.otlp_runs import JUDGE, otlp_values

REGRESSION = Scenario(rate=10.0, blip_s=0.0, duration=1200.0)
HEALTHY = dataclasses.replace(REGRESSION, regression_at=10**9)


def interleaved(values: dict[str, list[bytes]]) -> list[tuple[str, bytes]]:
    """Spans and evaluations in turn, as one worker reads two topics."""
    out = []
    for i in range(max(len(v) for v in values.values())):
        out += [(signal, values[signal][i]) for signal in ("traces", "logs")
                if i < len(values[signal])]
    return out


def recorded(seed: int) -> list[tuple[str, bytes]]:
    events = (scenario_events("bad", REGRESSION, seed=seed)
              + scenario_events("good", HEALTHY, seed=seed + 1))
    return interleaved(otlp_values(events, "otlp_json", per_message=200))


def worker_decisions(messages: list[tuple[str, bytes]]) -> list[Decision]:
    """What the worker decides: its OTLP loop's forwards, judged as forwarded messages."""
    loop: OtlpLoop[int] = OtlpLoop(default_policy().opentelemetry, "otlp_json",
                                   {"logs": "l", "traces": "t"})
    replay = Replay(default_policy())
    offsets = {"logs": 0, "traces": 0}
    for signal, value in messages:
        out = loop.on_message(signal, 0, offsets[signal], value, 0.0, 0)
        offsets[signal] += 1
        replay.feed_lines(forward for _, forward in out.forwards if forward is not None)
    replay.finish()
    return replay.decisions


@pytest.mark.parametrize("seed", [3, 17, 29])
def test_replaying_otlp_lines_decides_as_the_worker_does(seed: int) -> None:
    messages = recorded(seed)
    replay = Replay(default_policy())
    replay.feed_lines(value for _, value in messages)
    summary = replay.finish()
    assert [d.to_dict() for d in replay.decisions] == [
        d.to_dict() for d in worker_decisions(messages)]
    rollbacks = {d.service for d in replay.decisions if d.action == "rollback"}
    assert rollbacks == {"bad"}
    assert summary.otlp_records == sum(map(records_in, (v for _, v in messages)))
    assert not summary.rejected


def records_in(line: bytes) -> int:
    request = orjson.loads(line)
    resources = request.get("resourceLogs") or request.get("resourceSpans")
    return sum(len(scope.get("logRecords") or scope.get("spans"))
               for resource in resources
               for scope in resource.get("scopeLogs") or resource.get("scopeSpans"))


def test_the_command_replays_an_otlp_recording_and_reports_what_it_could_not_judge(
        tmp_path: Path) -> None:
    never_joined = logs((JUDGE, [evaluation(label="fail", trace="ab" * 16, span="cd" * 8)]))
    lines = [value for _, value in recorded(5)] + [encode(never_joined, "otlp_json"),
                                                   b'{"resourceLogs": 3}']
    path = tmp_path / "otlp.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    result = CliRunner().invoke(main, ["replay", str(path)])
    assert result.exit_code == 0, result.output
    decisions = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert {d["service"] for d in decisions if d["action"] == "rollback"} == {"bad"}
    assert "OTLP records read:" in result.stderr
    assert "rejected release_unknown: 1" in result.stderr
    assert "rejected bad_otlp: 1" in result.stderr
