"""Free loopback ports for the servers and listeners tests start."""

from __future__ import annotations

import random
import socket

# Below the kernel's ephemeral range (32768-60999 on Linux): a port the system hands out for
# port 0 is handed out to outgoing connections too, which can take it between a test's choice
# and the server's bind (seen with the unit tests running beside the servers' tests).
LOW, HIGH = 20000, 32768


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(also_free: int = 0) -> int:
    """A free loopback port; with ``also_free``, one whose ``port + also_free`` is free too
    (a cluster node's bus listens 10000 above its port).

    >>> 20000 <= free_port() < 32768 and 20000 <= free_port(10000) < 22768
    True
    """
    while True:
        port = random.randrange(LOW, HIGH - also_free)
        if _bindable(port) and (not also_free or _bindable(port + also_free)):
            return port
