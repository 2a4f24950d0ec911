"""Where the demo's worker serves /metrics: the usual address, or a free port beside it when
a running worker (or anything else) holds that one, so the demo never fails to start over it.
"""

from __future__ import annotations

import os
import socket

from rollguard.streams.metrics_http import VARIABLE
from rollguard.streams.settings import DEFAULT_METRICS_ADDR, host_port


def _free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.create_server((host, port), family=family):
            return True
    except OSError:
        return False


def metrics_addr(wanted: tuple[str, int] | None) -> tuple[tuple[str, int] | None, bool]:
    """``(address, moved)``: ``wanted`` when it can be listened on, else the same host on a
    port the system picks (``moved`` True); None (metrics off) stays None."""
    if wanted is None or _free(*wanted):
        return wanted, False
    host, port = wanted
    # The next free port above, not one the system picks: those come from the range it also
    # gives outgoing connections, one of which can take it before the worker listens there.
    for beside in range(port + 1, min(port + 200, 65536)):
        if _free(host, beside):
            return (host, beside), True
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.create_server((host, 0), family=family) as sock:
        return (host, int(sock.getsockname()[1])), True


def demo_metrics_addr() -> tuple[tuple[str, int] | None, bool]:
    """:func:`metrics_addr` of ``ROLLGUARD_METRICS_ADDR`` (default 127.0.0.1:9471)."""
    return metrics_addr(host_port(VARIABLE, os.environ.get(VARIABLE, DEFAULT_METRICS_ADDR)))


def as_text(addr: tuple[str, int] | None) -> str:
    """The variable's value for ``addr`` (empty: off).

    >>> as_text(("::1", 9471)), as_text(("127.0.0.1", 80)), as_text(None)
    ('[::1]:9471', '127.0.0.1:80', '')
    """
    if addr is None:
        return ""
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
