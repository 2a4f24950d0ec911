"""The demo's worker serves /metrics on the usual address, or on a free port beside it when
that one is taken (by a running worker, say): the demo starts either way."""

from __future__ import annotations

import socket

import pytest

from rollguard.demo.ports import demo_metrics_addr, metrics_addr


def test_a_taken_port_is_replaced_by_a_free_one_on_the_same_host() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        addr, moved = metrics_addr(("127.0.0.1", port))
        assert moved and addr is not None and addr[0] == "127.0.0.1" and addr[1] != port
        assert port < addr[1] <= port + 200, "the next free port above, not the system's pick"
        with socket.create_server(addr):  # the worker can listen there
            pass


def test_a_free_port_is_kept_and_metrics_off_stay_off() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    assert metrics_addr(("127.0.0.1", port)) == (("127.0.0.1", port), False)
    assert metrics_addr(None) == (None, False)


def test_the_address_comes_from_the_workers_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLGUARD_METRICS_ADDR", "")
    assert demo_metrics_addr() == (None, False)
