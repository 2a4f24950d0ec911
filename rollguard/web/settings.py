"""The settings of ``rollguard web``: where it listens and where it reads the worker's metrics;
topics, Kafka and Redis are the worker's own settings (:mod:`rollguard.streams.settings`)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from rollguard.base.errors import ConfigError
from rollguard.base.redact import redact_text
from rollguard.streams.settings import DEFAULT_METRICS_ADDR, WorkerSettings, host_port

ADDR_VARIABLE = "ROLLGUARD_WEB_ADDR"
DEFAULT_ADDR = "127.0.0.1:8471"
METRICS_VARIABLE = "ROLLGUARD_WEB_METRICS_URL"

# (variable, default, meaning) — `rollguard web --help` prints this table.
VARIABLES: tuple[tuple[str, str, str], ...] = (
    (ADDR_VARIABLE, DEFAULT_ADDR, "host:port the status page is served on"),
    (METRICS_VARIABLE, "http://<ROLLGUARD_METRICS_ADDR>/metrics",
     "every worker's metrics (comma-separated URLs), scraped for the charts; empty: none"),
    ("KAFKA_BOOTSTRAP", "127.0.0.1:9092", "Kafka brokers (and KAFKA_SECURITY_* as the worker)"),
    ("REDIS_URL", "redis://127.0.0.1:6379/0", "Redis holding pointers, history, approvals"),
    ("ROLLGUARD_TOPIC_AUDIT", "rollguard.audit", "the audit topic, read from its start"),
    ("ROLLGUARD_NAMESPACE", "rollguard", "prefix of the Redis keys"),
)


def metrics_url(worker_addr: str) -> str:
    """The worker's metrics endpoint for its ``ROLLGUARD_METRICS_ADDR`` (empty: none).

    >>> metrics_url("127.0.0.1:9471"), metrics_url("0.0.0.0:9000"), metrics_url("")
    ('http://127.0.0.1:9471/metrics', 'http://127.0.0.1:9000/metrics', '')
    """
    found = host_port("ROLLGUARD_METRICS_ADDR", worker_addr)
    if found is None:
        return ""
    host, port = found
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/metrics"


@dataclass(frozen=True)
class WebSettings:
    addr: tuple[str, int]
    metrics_urls: tuple[str, ...]  # every worker's /metrics; empty: no charts
    redis_url: str
    kafka_bootstrap: str
    topic_audit: str
    refresh_s: float = 2.0  # how often the page polls and the worker's metrics are scraped

    @property
    def address(self) -> str:
        host, port = self.addr
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/"

    @classmethod
    def from_env(cls) -> WebSettings:
        worker = WorkerSettings.from_env(dev=True)  # reads only: no command is ever signed
        addr = host_port(ADDR_VARIABLE, os.environ.get(ADDR_VARIABLE, DEFAULT_ADDR))
        if addr is None:
            addr = host_port(ADDR_VARIABLE, DEFAULT_ADDR)
        assert addr is not None
        scraped = os.environ.get(METRICS_VARIABLE)
        if scraped is None:
            scraped = metrics_url(os.environ.get("ROLLGUARD_METRICS_ADDR", DEFAULT_METRICS_ADDR))
        urls = tuple(u.strip() for u in scraped.split(",") if u.strip())
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ConfigError(f"{METRICS_VARIABLE}: expected http:// or https:// URLs, "
                                  f"got {redact_text(url)!r}")
        return cls(addr=addr, metrics_urls=urls, redis_url=worker.redis_url,
                   kafka_bootstrap=worker.kafka_bootstrap, topic_audit=worker.topic_audit)
