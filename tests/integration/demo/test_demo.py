"""`rollguard demo`, the README's main command, runs the whole loop and reports it."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys

import orjson
import pytest

from rollguard.actions.connect import async_redis_client
from rollguard.actions.pointer import PointerStore
from rollguard.base.config import DEV_SECRET
from rollguard.demo.slack import slack_text
from tests.support.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("servers")]


def run_demo(*args: str, **env: str) -> str:
    """The demo's output; its worker serves /metrics on a free port unless ``env`` says
    where (the usual 9471 may be held by a worker of another run on this machine)."""
    metrics = {"ROLLGUARD_METRICS_ADDR": f"127.0.0.1:{free_port()}"}
    result = subprocess.run(
        [sys.executable, "-m", "rollguard.cli", "demo", *args], capture_output=True,
        text=True, timeout=300, env={**os.environ, "COLUMNS": "200", **metrics, **env},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_demo_rolls_back_the_regression_but_not_the_blip() -> None:
    """The blip gives transient alerts; the regression one rollback; the server switches."""
    out = run_demo("--speed", "90", "--seed", "3")
    assert "rollbacks: 1" in out, out[-1500:]
    assert re.search(r"transient alerts: [1-9]", out), out[-1500:]
    decided = re.search(r"rollback decided at simulated (\d+) s \((\d+) s", out)
    assert decided and 0 < int(decided.group(2)) <= 8 * 60, out[-1500:]
    assert "serving process switched" in out
    assert "rollguard policy explain --rate 20 --share 0.5" in out, out[-1500:]
    assert_one_slack_thread_tells_the_rollback(out)


def assert_one_slack_thread_tells_the_rollback(out: str) -> None:
    """The notifier's Slack-format messages reached the demo's receiver, were printed as Slack
    shows them, and make one thread: one parent, updates in it, the rollback and its flip."""
    service = re.search(r"serving process for (support-bot-\w+)", out)
    captured = re.search(r"Slack-format messages \((\d+)\), captured by the local receiver at "
                         r"http://127\.0\.0\.1:\d+/slack; saved in (\S+):\n", out)
    assert service and captured, out[-3000:]
    with open(captured.group(2), "rb") as saved:
        bodies = orjson.loads(saved.read())
    texts = [slack_text(body) for body in bodies]
    page = re.search(r"status page: (http://127\.0\.0\.1:\d+)/\?service=", out)
    assert page, out[:3000]
    links = f"{page.group(1)}/?service={service.group(1)}"
    assert all(links in orjson.dumps(body).decode() for body in bodies), bodies  # the demo's page
    assert len(texts) == int(captured.group(1)) >= 2, texts
    heads = [text.splitlines()[0] for text in texts]
    thread = f"{service.group(1)} · release v2 · episode since "
    assert all(head.startswith(thread) for head in heads), heads
    assert [head.endswith("(new)") for head in heads] == [True] + [False] * (len(heads) - 1)
    assert all(head.endswith("(update)") for head in heads[1:]), heads
    told = "\n".join(texts)
    assert "*Rollback of v2 to v1 decided*" in told, told
    assert f"*Rolled back: the pointer of {service.group(1)} flipped*" in told, told
    assert f"  | {heads[-1]}" in out  # printed as a person reads it


def test_demo_rollout_ramps_a_good_release_to_stable_then_stops_a_bad_one_at_its_first_step(
        ) -> None:
    """Deployed by guarded rollouts, v2 is taken through 20, 50 and 100 % on evidence and
    marked stable after its bake, each step told as it happens; then v3, which regresses, is
    rolled back by the rule at its first step and never reaches the next. The pointer's
    history says the same as the demo's timeline and summary."""
    out = run_demo("--scenario", "rollout", "--speed", "90", "--seed", "3")
    for said in ("rollout of v2 started at 20% by demo-operator", "] v2 advanced to 50 %: step 1",
                 "] v2 advanced to 100 %: step 2", "] v2 marked stable: ",
                 "rollout of v3 started at 20% by demo-operator", "] v3 stopped at 20 %: ",
                 "] v3 rolled back: v2 serves all the traffic again", "rollbacks: 1",
                 "serving process switched"):
        assert said in out, (said, out[-3000:])
    assert re.search(r"\n  v2: 20 % at \d+ s, 50 % at \d+ s, 100 % at \d+ s; stable at \d+ s\n",
                     out), out[-3000:]
    assert re.search(r"\n  v3: 20 % at \d+ s; rolled back at 20 % at \d+ s\n", out), out[-3000:]
    service = re.search(r"serving process for (support-bot-\w+)", out)
    assert service, out[:1500]
    assert asyncio.run(rollout_moves(service.group(1))) == [
        ("rollout_start", "demo-operator", "v2", 20.0), ("ramp", "rule:rollout", "v2", 50.0),
        ("ramp", "rule:rollout", "v2", 100.0), ("mark_stable", "rule:rollout", "v2", None),
        ("rollout_start", "demo-operator", "v3", 20.0), ("rollback", "rule:policy", "v2", None)]


async def rollout_moves(service: str) -> list[tuple[str, str, object, object]]:
    """(op, issued_by, release, percent) of the service's applied rollout commands, oldest
    first, from its pointer's history in Redis."""
    client = async_redis_client()
    try:
        history = await PointerStore(client, DEV_SECRET).history(service)
    finally:
        await client.aclose()
    return [(h["op"], h["issued_by"], h["command"].get("release"), h["command"].get("percent"))
            for h in history if h["outcome"] == "applied"
            and h["op"] in ("rollout_start", "ramp", "mark_stable", "rollback")]


def test_demo_with_blips_only_never_rolls_back() -> None:
    """The blip-only scenario ends without a rollback; its worker's metrics port being taken
    (a worker running already) moves /metrics to a free port, printed."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        out = run_demo("--scenario", "blip", "--speed", "120",
                       ROLLGUARD_METRICS_ADDR=f"127.0.0.1:{port}")
    assert "rollbacks: 0" in out, out[-1500:]
    assert "Slack-format messages" in out and "Rolled back" not in out, out[-3000:]
    moved = re.search(r"metrics: http://127\.0\.0\.1:(\d+)/metrics \(the usual port is taken", out)
    assert moved and int(moved.group(1)) != port, out[:1500]


def test_demo_latency_regression_rolls_back_only_the_model() -> None:
    """A latency-only regression is answered by a partial rollback of the model component."""
    out = run_demo("--scenario", "latency", "--speed", "90")
    assert "rollbacks: 1" in out, out[-1500:]
    assert "v2~rollback(model)->v1" in out
    assert "serving process switched" in out


@pytest.mark.parametrize(("via", "receiver"), [("otel", "rollguard otlp"),
                                               ("otelcol", "an OpenTelemetry Collector")])
def test_demo_via_opentelemetry_rolls_back_the_regression(via: str, receiver: str) -> None:
    """The demo's service instrumented with the OpenTelemetry SDK (spans and evaluation
    events over OTLP/HTTP, through rollguard otlp or the local Collector) reaches the same
    one rollback, and the serving process switches."""
    out = run_demo("--via", via, "--speed", "90", "--seed", "3")
    assert f"evaluation events (the SDK, OTLP/HTTP) to {receiver} at http://127.0.0.1:" in out
    assert "rollbacks: 1" in out, out[-1500:]
    decided = re.search(r"rollback decided at simulated (\d+) s \((\d+) s", out)
    assert decided and 0 < int(decided.group(2)) <= 8 * 60, out[-1500:]
    assert "serving process switched" in out
