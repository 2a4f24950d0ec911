"""`rollguard replay`: decisions on stdout, a summary on stderr, clear failures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from bench.scenarios import Scenario, to_lines
from rollguard.cli import main
from rollguard.streams.wire import encode_blocks

KEYS = ["ts", "service", "release", "action", "verdict", "to", "components", "reason",
        "evidence", "requires_approval", "dry_run"]


@pytest.fixture(name="recording", scope="module")
def fixture_recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("replay") / "events.jsonl"
    lines = to_lines(Scenario(3, metric="latency_ms", magnitude=3.0, duration=1500).events())
    path.write_bytes(b"\n".join([b"not json", *lines, b'{"event_id": 1}']) + b"\n")
    return path


def test_replay_prints_one_json_decision_per_line_and_a_summary(recording: Path) -> None:
    """A regressed canary gives one rollback object on stdout; counts go to stderr."""
    result = CliRunner().invoke(main, ["replay", str(recording)])
    assert result.exit_code == 0, result.output
    decisions = [orjson.loads(line) for line in result.stdout.splitlines()]
    rollbacks = [d for d in decisions if d["action"] == "rollback"]
    assert len(rollbacks) == 1 and list(rollbacks[0]) == KEYS
    assert rollbacks[0]["to"] == "stable-1" and rollbacks[0]["components"] == ["model"]
    assert rollbacks[0]["evidence"]["metric"] == "latency_ms"
    assert "rejected not_json: 1" in result.stderr
    assert "rejected bad_event_id: 1" in result.stderr


# Runs `python -m rollguard.cli ARGS`, then lists every module the process has imported.
PROBE = """import runpy, sys
try:
    runpy.run_module("rollguard.cli", run_name="__main__", alter_sys=True)
except SystemExit:
    pass
sys.stderr.write("\\nimported: " + " ".join(sys.modules))
"""


def imported_modules(*args: str) -> set[str]:
    """Every module a run of ``rollguard ARGS`` has imported by its end."""
    result = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True,
                            check=True)
    return set(result.stderr.decode().rsplit("imported: ", 1)[1].split())


def test_replay_imports_no_kafka_redis_or_scipy(recording: Path) -> None:
    """A replay runs the whole core, River's ADWIN included, without the Kafka and Redis
    clients or SciPy: what keeps its start-up short."""
    imported = imported_modules("replay", str(recording))
    assert "river._river_rust.drift" in imported  # the run did reach ADWIN
    assert not {name.split(".")[0] for name in imported} & {
        "faust", "aiokafka", "redis", "scipy", "asyncio"}


def test_replay_help_imports_only_its_own_command() -> None:
    """`rollguard replay --help` loads the replay command's module, not the others'."""
    imported = imported_modules("replay", "--help")
    assert "rollguard.cli.replay" in imported
    assert not imported & {"rollguard.cli.pointer", "rollguard.cli.worker", "aiokafka", "redis"}


def test_replay_reads_stdin_when_given_a_dash(recording: Path) -> None:
    """`-` reads the events from standard input with the same result."""
    from_file = CliRunner().invoke(main, ["replay", str(recording)])
    from_stdin = CliRunner().invoke(main, ["replay", "-"], input=recording.read_bytes())
    assert from_stdin.exit_code == 0
    assert from_stdin.stdout == from_file.stdout


def test_replay_of_a_missing_file_fails_with_a_message(tmp_path: Path) -> None:
    """An input that cannot be opened is the one case with a non-zero exit."""
    result = CliRunner().invoke(main, ["replay", str(tmp_path / "absent.jsonl")])
    assert result.exit_code != 0
    assert "cannot open" in result.output


def test_replay_refuses_a_bad_policy_naming_the_field(recording: Path, tmp_path: Path) -> None:
    """A policy mistake stops the replay before it starts, with the field named."""
    policy = tmp_path / "p.toml"
    policy.write_text('[metrics.error]\nstatistic = "rate"\ntolerance = -1\n')
    result = CliRunner().invoke(main, ["replay", str(recording), "--policy", str(policy)])
    assert result.exit_code != 0
    assert "metrics.error.tolerance" in result.output


def test_replay_plot_writes_a_png(recording: Path, tmp_path: Path) -> None:
    """--plot draws the metrics into a PNG file."""
    out = tmp_path / "replay.png"
    result = CliRunner().invoke(main, ["replay", str(recording), "--plot", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_replay_of_recorded_kafka_messages_with_blocks_decides_the_same(
        recording: Path, tmp_path: Path) -> None:
    """Lines holding what the events topic carries (arrays of blocks, as the emitter sends)
    give the same decisions and counts as the same events one per line."""
    lines = recording.read_bytes().splitlines()
    runs: list[list[dict]] = []
    for line in lines[1:-1]:
        event = orjson.loads(line)
        if runs and runs[-1][-1]["release"] == event["release"] and len(runs[-1]) < 200:
            runs[-1].append(event)
        else:
            runs.append([event])
    messages = tmp_path / "messages.jsonl"
    messages.write_bytes(b"\n".join([lines[0], *map(encode_blocks, runs), lines[-1]]) + b"\n")
    one_by_one = CliRunner().invoke(main, ["replay", str(recording)])
    as_blocks = CliRunner().invoke(main, ["replay", str(messages)])
    assert as_blocks.exit_code == 0, as_blocks.output
    assert len(runs) < len(lines) / 3  # blocks of several events, not one each
    assert as_blocks.stdout == one_by_one.stdout and "rollback" in as_blocks.stdout
    assert as_blocks.stderr == one_by_one.stderr
