"""A page loaded in headless Chromium (Debian's, installed when missing): its DOM after its
scripts ran, a screenshot, or the page kept open and read while it updates itself."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp

from localservers.packages import chromium_binary
from tests.support.ports import free_port

# Chromium as root needs --no-sandbox; the virtual time budget lets the page's scripts fetch
# and draw before the DOM is printed or the picture taken.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--virtual-time-budget=6000")


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([chromium_binary(), *FLAGS, *args], capture_output=True, text=True,
                          timeout=90, check=True)


def dump_dom(url: str) -> str:
    """The page's DOM, serialised, once its scripts have run."""
    return _chromium("--dump-dom", url).stdout


def screenshot(url: str, path: Path, size: tuple[int, int] = (1400, 1500)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    _chromium(f"--screenshot={path}", f"--window-size={size[0]},{size[1]}", url)
    return path


class LivePage:
    """A page kept open in headless Chromium, read through the DevTools protocol while it
    runs: what its scripts show now, without reloading it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.session: aiohttp.ClientSession | None = None
        self.socket: aiohttp.ClientWebSocketResponse | None = None
        self.next_id = 0

    async def __aenter__(self) -> LivePage:
        self.process = subprocess.Popen(
            [chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu",
             f"--remote-debugging-port={self.port}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.session = aiohttp.ClientSession()
        deadline = time.monotonic() + 30
        while True:
            try:
                async with self.session.put(
                        f"http://127.0.0.1:{self.port}/json/new?{self.url}") as response:
                    target = await response.json()
                break
            except aiohttp.ClientError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        self.socket = await self.session.ws_connect(target["webSocketDebuggerUrl"],
                                                   max_msg_size=0)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self.socket is not None:
            await self.socket.close()
        if self.session is not None:
            await self.session.close()
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page, now."""
        assert self.socket is not None
        self.next_id += 1
        await self.socket.send_json({"id": self.next_id, "method": "Runtime.evaluate",
                                     "params": {"expression": expression,
                                                "returnByValue": True}})
        while True:
            reply = await self.socket.receive_json(timeout=30)
            if reply.get("id") == self.next_id:
                return reply["result"]["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 120.0) -> Any:
        """Wait until ``expression`` is truthy in the page; return its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = await self.evaluate(expression)
            if value:
                return value
            await asyncio.sleep(0.5)
        raise AssertionError(f"the page never showed {expression!r} in {timeout:.0f} s")
