"""A page loaded in headless Chromium (Debian's, installed when missing): its DOM after its
scripts ran, and a screenshot."""

from __future__ import annotations

import subprocess
from pathlib import Path

from rollguard.services import chromium_binary

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
