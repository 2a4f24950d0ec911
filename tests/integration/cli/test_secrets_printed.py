"""No secret is printed: passwords in REDIS_URL or for Kafka, and ROLLGUARD_SECRET, stay out
of `rollguard check`, error messages and `--help`."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from rollguard.cli import main

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("servers")]

PASSWORD = "hunter2-never-printed"


@pytest.fixture(name="runner")
def fixture_runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("ROLLGUARD_SECRET", f"secret-{PASSWORD}")
    return CliRunner()


def test_check_prints_the_redis_url_without_its_password(
        runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    # The default user of an unsecured Redis takes any password: the check succeeds.
    monkeypatch.setenv("REDIS_URL", f"redis://default:{PASSWORD}@127.0.0.1:6379/0")
    result = runner.invoke(main, ["check"])
    assert result.exit_code == 0, result.output
    assert "redis: ok" in result.output and "default:***@127.0.0.1:6379" in result.output
    assert PASSWORD not in result.output


def test_an_unreachable_redis_is_named_without_its_password(
        runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", f"redis://app:{PASSWORD}@127.0.0.1:1/0")
    for args in (["check"], ["status", "some-service"]):
        result = runner.invoke(main, args)
        assert result.exit_code == 1
        assert "127.0.0.1:1" in result.output and PASSWORD not in result.output


def test_help_shows_defaults_never_the_values_set(
        runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", PASSWORD)
    monkeypatch.setenv("REDIS_URL", f"redis://app:{PASSWORD}@db:6379/0")
    result = runner.invoke(main, ["worker", "--help"])
    assert "KAFKA_SASL_PASSWORD" in result.output and "ROLLGUARD_SECRET_FILE" in result.output
    assert PASSWORD not in result.output


def test_an_operator_key_is_never_printed(
        runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not in --help, nor when the key is malformed, nor in the errors of commands."""
    from rollguard.actions.operators import OperatorKey, derive_key

    key = OperatorKey("ana", 1, derive_key(b"some-secret", "ana", 1))
    secret_part = key.key.hex()[:40]
    for value in (key.token(), key.token()[:-2]):
        monkeypatch.setenv("ROLLGUARD_OPERATOR_KEY", value)
        for args in (["approve", "--help"], ["operator", "add", "--help"],
                     ["approve", "no-such-service", "c1", "--timeout", "1"],
                     ["pin", "no-such-service", "--by", "bob"]):
            result = runner.invoke(main, args)
            assert secret_part not in result.output, args
