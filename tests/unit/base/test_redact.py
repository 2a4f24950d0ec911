"""Secrets are masked wherever they could be printed: URLs, errors, log records."""

from __future__ import annotations

import logging

import pytest

from rollguard.base.errors import AccessRefused, ServiceUnavailable
from rollguard.base.redact import install_log_redaction, redact


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://u:hunter2@h:6379/0", "redis://u:***@h:6379/0"),
    ("rediss://:hunter2@h:6380/1", "rediss://:***@h:6380/1"),
    ("redis://h:6379/0?password=hunter2", "redis://h:6379/0?password=%2A%2A%2A"),
    ("redis://h:6379/0", "redis://h:6379/0"),
    ("unix:///run/redis.sock", "unix:///run/redis.sock"),
])
def test_a_url_keeps_everything_but_its_password(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_errors_never_carry_a_password_of_the_url_they_name() -> None:
    error = ServiceUnavailable("Redis", "redis://app:hunter2@db:6379/0",
                               "lost redis://app:hunter2@db:6379/0")
    assert "hunter2" not in str(error) and "hunter2" not in error.address
    assert "db:6379" in str(error)
    refused = AccessRefused("Redis", "redis://app:hunter2@db:6379/0", "refused the login",
                            "REDIS_URL")
    assert "hunter2" not in str(refused) and "(REDIS_URL)" in str(refused)


def test_log_records_are_masked_whoever_writes_them(caplog: pytest.LogCaptureFixture) -> None:
    saved = logging.getLogRecordFactory()
    try:
        install_log_redaction(["s3cret-key", None])
        with caplog.at_level(logging.INFO):
            logging.getLogger("aiokafka").info("connecting to %s with %s",
                                               "redis://u:hunter2@h/0", "s3cret-key")
            try:
                raise ValueError("key s3cret-key refused")
            except ValueError:
                logging.getLogger("faust").exception("failed")
    finally:
        logging.setLogRecordFactory(saved)
    assert "hunter2" not in caplog.text and "s3cret-key" not in caplog.text
    assert "redis://u:***@h/0" in caplog.text and "refused" in caplog.text
