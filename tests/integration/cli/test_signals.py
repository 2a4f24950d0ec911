"""Long-running commands stop on SIGINT and SIGTERM whatever dispositions they inherited
(a background job, nohup and some CI runners start them with SIGINT ignored), and leave no
child behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.e2e import ignoring_sigint
from tests.support.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("servers")]


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` now (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


def alive(pids: set[int]) -> set[int]:
    out = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            out.add(pid)
    return out


def wait_until(check: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


# The long-running commands without children: (command, its settings given a free port,
# the start of the line it prints on stderr once it serves).
SERVERS: dict[str, tuple[Callable[[int], dict[str, str]], str]] = {
    "web": (lambda port: {"ROLLGUARD_WEB_ADDR": f"127.0.0.1:{port}",
                          "ROLLGUARD_WEB_METRICS_URL": ""}, "status page:"),
    "otlp": (lambda port: {"ROLLGUARD_OTLP_ADDR": f"127.0.0.1:{port}"}, "otlp: receiving"),
}


@pytest.mark.parametrize("command", sorted(SERVERS))
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_server_command_stops_on_a_signal_with_sigint_inherited_ignored(
        command: str, signum: int) -> None:
    settings, ready = SERVERS[command]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **settings(free_port())}
    server = subprocess.Popen([sys.executable, "-m", "rollguard.cli", command], env=env,
                              stderr=subprocess.PIPE, text=True, preexec_fn=ignoring_sigint)
    try:
        assert server.stderr is not None
        assert server.stderr.readline().startswith(ready)
        server.send_signal(signum)
        assert server.wait(10) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_the_demo_stops_its_worker_server_and_notifier_on_a_signal(signum: int) -> None:
    """Mid-run, with its children up: the demo stops them all and exits."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200",
           "ROLLGUARD_WEB_ADDR": f"127.0.0.1:{free_port()}",
           "ROLLGUARD_METRICS_ADDR": f"127.0.0.1:{free_port()}"}
    demo = subprocess.Popen([sys.executable, "-m", "rollguard.cli", "demo", "--speed", "30"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, preexec_fn=ignoring_sigint)
    seen: list[str] = []
    try:
        assert demo.stdout is not None
        for line in demo.stdout:
            seen.append(line)
            if re.match(r"simulated\s", line):  # the worker is ready, events flow
                break
        children = descendants(demo.pid)
        assert len(children) >= 2, "".join(seen)  # the worker and the serving process
        demo.send_signal(signum)
        demo.wait(60)
        assert demo.returncode == 0, "".join(seen)[-2000:]
        assert wait_until(lambda: not alive(children), 10.0), alive(children)
    finally:
        if demo.poll() is None:
            for pid in alive(descendants(demo.pid)):
                os.kill(pid, signal.SIGKILL)
            demo.kill()
            demo.wait()
