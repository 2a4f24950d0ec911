"""Free loopback ports for the servers and listeners tests start."""

from __future__ import annotations

import socket


def free_port(also_free: int = 0) -> int:
    """A free loopback port; with ``also_free``, one whose ``port + also_free`` is free too
    (a cluster node's bus listens 10000 above its port)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if not also_free:
            return port
        if port + also_free < 65536:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port + also_free))
                except OSError:
                    continue
            return port
