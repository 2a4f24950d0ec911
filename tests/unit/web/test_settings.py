"""The status page's settings: where it listens and which workers' metrics it scrapes."""

from __future__ import annotations

import pytest

from rollguard.base.errors import ConfigError
from rollguard.web.settings import WebSettings


@pytest.mark.parametrize(("env", "addr", "urls"), [
    ({}, ("127.0.0.1", 8471), ("http://127.0.0.1:9471/metrics",)),
    ({"ROLLGUARD_WEB_ADDR": "0.0.0.0:80", "ROLLGUARD_METRICS_ADDR": "0.0.0.0:9000"},
     ("0.0.0.0", 80), ("http://127.0.0.1:9000/metrics",)),
    ({"ROLLGUARD_METRICS_ADDR": ""}, ("127.0.0.1", 8471), ()),
    ({"ROLLGUARD_WEB_METRICS_URL": " http://w1:9471/metrics, http://w2:9471/metrics "},
     ("127.0.0.1", 8471), ("http://w1:9471/metrics", "http://w2:9471/metrics")),
    ({"ROLLGUARD_WEB_METRICS_URL": ""}, ("127.0.0.1", 8471), ()),
])
def test_the_page_listens_and_scrapes_where_the_variables_say(
        monkeypatch: pytest.MonkeyPatch, env: dict[str, str], addr: tuple[str, int],
        urls: tuple[str, ...]) -> None:
    """By default the one local worker's metrics; a list for several workers; empty: none."""
    for name in ("ROLLGUARD_WEB_ADDR", "ROLLGUARD_METRICS_ADDR", "ROLLGUARD_WEB_METRICS_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = WebSettings.from_env()
    assert (settings.addr, settings.metrics_urls) == (addr, urls)
    assert settings.address == f"http://{addr[0]}:{addr[1]}/"


@pytest.mark.parametrize(("name", "value", "says"), [
    ("ROLLGUARD_WEB_ADDR", "8471", "ROLLGUARD_WEB_ADDR: must be host:port"),
    ("ROLLGUARD_WEB_METRICS_URL", "w1:9471/metrics", "ROLLGUARD_WEB_METRICS_URL: expected"),
])
def test_a_bad_setting_is_named(monkeypatch: pytest.MonkeyPatch, name: str, value: str,
                                says: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=says):
        WebSettings.from_env()
