"""The settings of ``rollguard notify``: where to post, from environment variables.

Webhook URLs and keys are secrets: no error message, log line or ``--help`` text shows them
(:class:`Redactor` masks any that a library's message may carry). ``--help`` prints
:data:`VARIABLES` with :func:`rollguard.streams.settings.describe`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from rollguard.base.config import secret_from_env
from rollguard.base.errors import ConfigError
from rollguard.streams.settings import WorkerSettings, _seconds, host_port

DEFAULT_PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
DEFAULT_WEB_URL = "http://127.0.0.1:8471"

# (variable, default, meaning) — `rollguard notify --help` prints this table.
VARIABLES: tuple[tuple[str, str, str], ...] = (
    ("ROLLGUARD_NOTIFY_SLACK", "(off)", "Slack incoming-webhook URL (secret)"),
    ("ROLLGUARD_NOTIFY_WEBHOOK", "(off)", "URL of a generic JSON webhook (secret)"),
    ("ROLLGUARD_NOTIFY_WEBHOOK_SECRET", "(ROLLGUARD_SECRET)",
     "key of the webhook's X-Rollguard-Signature HMAC"),
    ("ROLLGUARD_NOTIFY_PAGERDUTY_KEY", "(off)", "PagerDuty Events v2 routing key (secret)"),
    ("ROLLGUARD_NOTIFY_PAGERDUTY_URL", DEFAULT_PAGERDUTY_URL, "PagerDuty events endpoint"),
    ("ROLLGUARD_WEB_URL", DEFAULT_WEB_URL, "status page linked from every message"),
    ("ROLLGUARD_NOTIFY_GROUP", "<ROLLGUARD_APP_ID>-notify", "consumer group of the notifier"),
    ("ROLLGUARD_NOTIFY_BATCH_S", "2", "seconds an episode's notices are gathered into one"),
    ("ROLLGUARD_NOTIFY_REPEAT_S", "600", "an identical alert is told at most once this often"),
    ("ROLLGUARD_NOTIFY_RETRY_S", "1", "first retry after a failed delivery (then doubling)"),
    ("ROLLGUARD_NOTIFY_SUMMARISE_S", "60", "a backlog older than this is sent as one digest"),
    ("ROLLGUARD_NOTIFY_METRICS_ADDR", "(off)",
     "host:port of the notifier's /metrics (e.g. 127.0.0.1:9472)"),
)


def _get(name: str, default: str = "") -> str:
    return os.environ.get(name, "").strip() or default


def _url(name: str) -> str:
    value = _get(name)
    if value and not value.startswith(("http://", "https://")):
        raise ConfigError(f"{name}: expected an http:// or https:// URL (value not shown)")
    return value


@dataclass(frozen=True)
class NotifySettings:
    """Destinations (empty: off), timing and the topics to read."""

    worker: WorkerSettings
    slack_url: str
    webhook_url: str
    webhook_key: bytes
    pagerduty_key: str
    pagerduty_url: str
    web_url: str
    group: str
    batch_s: float = 2.0
    repeat_s: float = 600.0
    retry_s: float = 1.0
    summarise_s: float = 60.0
    metrics_addr: tuple[str, int] | None = None  # None: no /metrics

    @classmethod
    def from_env(cls) -> NotifySettings:
        worker = WorkerSettings.from_env()
        settings = cls(
            worker=worker,
            slack_url=_url("ROLLGUARD_NOTIFY_SLACK"),
            webhook_url=_url("ROLLGUARD_NOTIFY_WEBHOOK"),
            webhook_key=(_get("ROLLGUARD_NOTIFY_WEBHOOK_SECRET").encode()
                         or secret_from_env()[0]),
            pagerduty_key=_get("ROLLGUARD_NOTIFY_PAGERDUTY_KEY"),
            pagerduty_url=_url("ROLLGUARD_NOTIFY_PAGERDUTY_URL") or DEFAULT_PAGERDUTY_URL,
            web_url=_get("ROLLGUARD_WEB_URL", DEFAULT_WEB_URL),
            group=_get("ROLLGUARD_NOTIFY_GROUP", f"{worker.app_id}-notify"),
            batch_s=_seconds("ROLLGUARD_NOTIFY_BATCH_S", "2"),
            repeat_s=_seconds("ROLLGUARD_NOTIFY_REPEAT_S", "600"),
            retry_s=_seconds("ROLLGUARD_NOTIFY_RETRY_S", "1"),
            summarise_s=_seconds("ROLLGUARD_NOTIFY_SUMMARISE_S", "60"),
            metrics_addr=host_port("ROLLGUARD_NOTIFY_METRICS_ADDR",
                                   _get("ROLLGUARD_NOTIFY_METRICS_ADDR")),
        )
        if not (settings.slack_url or settings.webhook_url or settings.pagerduty_key):
            raise ConfigError("no destination: set ROLLGUARD_NOTIFY_SLACK, "
                              "ROLLGUARD_NOTIFY_WEBHOOK or ROLLGUARD_NOTIFY_PAGERDUTY_KEY")
        return settings

    def secrets(self) -> tuple[str, ...]:
        """Everything a log line must never show."""
        values = (self.slack_url, self.webhook_url, self.webhook_key.decode(errors="replace"),
                  self.pagerduty_key)
        return tuple(v for v in values if v)


class Redactor:
    """Masks secrets in text meant for a log.

    >>> Redactor(["https://hooks.example/T0/B0/xyz"]).clean(
    ...     "POST https://hooks.example/T0/B0/xyz failed")
    'POST [redacted] failed'
    """

    def __init__(self, secrets: tuple[str, ...] | list[str]) -> None:
        # Longest first, so a URL is masked whole before a key inside it.
        self._secrets = sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True)

    def clean(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text

