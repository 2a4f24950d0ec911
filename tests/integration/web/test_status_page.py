"""The status page, loaded in a real browser during `rollguard demo`, shows the service, its
release and the rollback."""

from __future__ import annotations

import asyncio
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.support.browser import LivePage, dump_dom, screenshot
from tests.support.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("servers")]
SCREENSHOT = Path(".rollguard/screenshots/status-page.png")  # docs/status-page.png is one
ROLLED_BACK = ("[...document.querySelectorAll('#history tbody tr')].some("
               "r => /rollback\\s+v1\\s+applied/.test(r.innerText))")


def _lines(process: subprocess.Popen[str]) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _wait_for(lines: queue.Queue[str], pattern: str, seen: list[str],
              timeout: float = 300.0) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1.0)
        except queue.Empty:
            continue
        seen.append(line)
        found = re.search(pattern, line)
        if found:
            return found
    raise AssertionError(f"no line matching {pattern!r}; the demo said:\n{''.join(seen)[-3000:]}")


async def test_status_page_shows_the_release_and_its_rollback_in_a_browser() -> None:
    """During the demo the page, opened before the rollback, shows it without a reload;
    then it lists the service, charts its metrics with the rollback marked, tells the
    decision and has the promote and the rollback in the history."""
    env = {**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1",
           "ROLLGUARD_WEB_ADDR": f"127.0.0.1:{free_port()}",
           "ROLLGUARD_METRICS_ADDR": f"127.0.0.1:{free_port()}"}
    demo = subprocess.Popen(
        [sys.executable, "-m", "rollguard.cli", "demo", "--speed", "60", "--seed", "3",
         "--hold", "240"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen: list[str] = []
    try:
        lines = _lines(demo)
        page = await asyncio.to_thread(_wait_for, lines,
                                       r"status page: (http://\S+\?service=(\S+))", seen)
        url, service = page.group(1), page.group(2)
        async with LivePage(url) as live:
            await live.wait_for("document.body.dataset.loaded === 'true' && "
                                "(window.rgMark = 42)")
            assert not await live.evaluate(ROLLED_BACK), "the rollback came before the page"
            await live.wait_for(ROLLED_BACK)
            assert await live.evaluate("window.rgMark") == 42  # the same page: not reloaded
        await asyncio.to_thread(_wait_for, lines, r"the status page stays up", seen)
        dom = dump_dom(url)
        assert f'data-service="{service}"' in dom, dom[-3000:]
        assert re.search(r"<td>rollback</td><td>v1</td><td>applied</td><td>rule:", dom), dom
        assert "<td>promote</td><td>v2</td><td>applied</td>" in dom, dom
        assert "rollback of v2 to v1" in dom
        assert 'data-kind="decision"' in dom and 'data-kind="flip"' in dom
        assert re.search(r'<svg[^>]*data-metric="hallucination"', dom)
        shot = screenshot(url, SCREENSHOT)
        assert shot.stat().st_size > 20_000
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(30)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait(10)
    assert demo.returncode == 0, "".join(seen)[-3000:]


def test_rollguard_web_serves_the_services_it_is_told_to() -> None:
    """`rollguard web --service` answers with that service's row once it listens, and says
    where; an address already taken is refused naming the variable."""
    import json
    import urllib.request

    port = free_port()
    env = {**os.environ, "ROLLGUARD_WEB_ADDR": f"127.0.0.1:{port}", "PYTHONUNBUFFERED": "1",
           "ROLLGUARD_WEB_METRICS_URL": ""}
    command = [sys.executable, "-m", "rollguard.cli", "web", "--service", "nobody-yet"]
    web = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert web.stderr is not None
        assert web.stderr.readline().strip() == f"status page: http://127.0.0.1:{port}/"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/services", timeout=10) as r:
            [row] = json.load(r)["services"]
        assert (row["service"], row["active"], row["judgement"]) == ("nobody-yet", None, "ok")
        taken = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert taken.returncode == 1
        assert "ROLLGUARD_WEB_ADDR: cannot listen on" in taken.stderr
    finally:
        web.send_signal(signal.SIGINT)
        web.wait(30)
    assert web.returncode == 0
