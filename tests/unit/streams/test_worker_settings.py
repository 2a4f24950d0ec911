"""Worker settings come from the environment; a wrong value is refused by name."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from rollguard.base.config import DEV_SECRET, secret_from_env, secret_setting
from rollguard.base.errors import ConfigError
from rollguard.streams.settings import DEFAULT_CHECKPOINT_S, VARIABLES, WorkerSettings


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLGUARD_SECRET", "sekrit-for-tests")
    monkeypatch.delenv("ROLLGUARD_SECRET_FILE", raising=False)


@pytest.mark.parametrize(("name", "value"), [
    ("ROLLGUARD_PARTITIONS", "0"), ("ROLLGUARD_PARTITIONS", "four"),
    ("ROLLGUARD_CHECKPOINT_S", "-1"), ("ROLLGUARD_CHECKPOINT_S", "soon"),
    ("ROLLGUARD_CHECKPOINT_S", "7200"), ("ROLLGUARD_CHECKPOINT_S", "nan"),
    ("ROLLGUARD_METRICS_ADDR", "9471"), ("ROLLGUARD_METRICS_ADDR", "localhost:"),
    ("ROLLGUARD_METRICS_ADDR", ":9471"), ("ROLLGUARD_METRICS_ADDR", "localhost:70000"),
    ("ROLLGUARD_METRICS_ADDR", "localhost:http"),
    ("ROLLGUARD_COMMAND_TTL_S", "0.5"), ("ROLLGUARD_COMMAND_TTL_S", "a day"),
    ("ROLLGUARD_COMMAND_TTL_S", "86400"),
    ("ROLLGUARD_SESSION_TIMEOUT_S", "0.5"), ("ROLLGUARD_SESSION_TIMEOUT_S", "a minute"),
    ("ROLLGUARD_EVENT_LOOP", "trio"), ("ROLLGUARD_EVENT_LOOP", "uv"),
])
def test_a_bad_value_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch, name: str,
                                                    value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        WorkerSettings.from_env()


@pytest.mark.parametrize(("value", "seconds"), [("", DEFAULT_CHECKPOINT_S), ("0", 0.0),
                                                ("0.5", 0.5), ("30", 30.0)])
def test_checkpoint_interval_is_read_in_seconds(monkeypatch: pytest.MonkeyPatch, value: str,
                                                seconds: float) -> None:
    monkeypatch.setenv("ROLLGUARD_CHECKPOINT_S", value)
    assert WorkerSettings.from_env().checkpoint_s == seconds


@pytest.mark.parametrize(("value", "addr"), [
    (None, ("127.0.0.1", 9471)), ("", None), (" ", None), ("0.0.0.0:9100", ("0.0.0.0", 9100)),
    ("[::1]:9471", ("::1", 9471)),
])
def test_metrics_address_defaults_to_loopback_and_empty_turns_it_off(
        monkeypatch: pytest.MonkeyPatch, value: str | None, addr: tuple[str, int] | None) -> None:
    if value is None:
        monkeypatch.delenv("ROLLGUARD_METRICS_ADDR", raising=False)
    else:
        monkeypatch.setenv("ROLLGUARD_METRICS_ADDR", value)
    assert WorkerSettings.from_env().metrics_addr == addr


@pytest.mark.parametrize(("value", "seconds"), [("", 300.0), ("3", 3.0), ("600", 600.0)])
def test_the_command_expiry_is_read_in_seconds(monkeypatch: pytest.MonkeyPatch, value: str,
                                               seconds: float) -> None:
    monkeypatch.setenv("ROLLGUARD_COMMAND_TTL_S", value)
    assert WorkerSettings.from_env().command_ttl_s == seconds


def test_only_the_commands_topic_records_the_brokers_receipt_and_the_fleet_keeps_6_hours(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLGUARD_TOPIC_COMMANDS", "team-a.commands")
    monkeypatch.setenv("ROLLGUARD_APP_ID", "team-a")
    settings = WorkerSettings.from_env()
    assert settings.topic_configs() == {
        "team-a.commands": {"message.timestamp.type": "LogAppendTime"},
        "team-a-fleet": {"retention.ms": "21600000"}}
    assert settings.topics()["team-a-fleet"] == 1
    assert set(settings.topic_configs()) <= set(settings.topics())


@pytest.mark.parametrize(("value", "loop"), [("", "asyncio"), ("asyncio", "asyncio"),
                                             ("UVLOOP", "uvloop")])
def test_the_event_loop_is_asyncio_s_unless_uvloop_is_asked_for(
        monkeypatch: pytest.MonkeyPatch, value: str, loop: str) -> None:
    monkeypatch.setenv("ROLLGUARD_EVENT_LOOP", value)
    assert WorkerSettings.from_env().event_loop == loop


@pytest.mark.parametrize(("value", "seconds"), [("", 10.0), ("6", 6.0), ("45", 45.0)])
def test_the_session_timeout_is_read_in_seconds(monkeypatch: pytest.MonkeyPatch, value: str,
                                                seconds: float) -> None:
    monkeypatch.setenv("ROLLGUARD_SESSION_TIMEOUT_S", value)
    assert WorkerSettings.from_env().session_timeout_s == seconds


def test_every_setting_is_listed_for_help() -> None:
    assert "ROLLGUARD_CHECKPOINT_S" in {name for name, _, _ in VARIABLES}


def test_without_a_secret_the_worker_refuses_and_says_how_to_make_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROLLGUARD_SECRET")
    with pytest.raises(ConfigError, match="ROLLGUARD_SECRET is not set") as refused:
        WorkerSettings.from_env()
    assert "secrets.token_hex(32)" in str(refused.value)
    assert "ROLLGUARD_SECRET_FILE" in str(refused.value)


def test_only_an_explicit_dev_mode_signs_with_the_development_secret(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROLLGUARD_SECRET")
    settings = WorkerSettings.from_env(dev=True)
    assert (settings.secret, settings.secret_is_default) == (DEV_SECRET, True)


def test_the_secret_can_come_from_a_file(monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    """As secrets are mounted in containers: the file's content, without its newline."""
    monkeypatch.delenv("ROLLGUARD_SECRET")
    (tmp_path / "secret").write_text("from-a-file\n")
    monkeypatch.setenv("ROLLGUARD_SECRET_FILE", str(tmp_path / "secret"))
    assert secret_from_env() == (b"from-a-file", False)
    assert WorkerSettings.from_env().secret == b"from-a-file"


@pytest.mark.parametrize(("name", "value", "read"), [
    ("KAFKA_SASL_PASSWORD", "kafka-pw-from-a-file",
     lambda s: s.kafka_security.password),
    ("REDIS_URL", "rediss://app:pw@redis:6380/0", lambda s: s.redis_url),
])
def test_the_kafka_password_and_the_redis_url_can_come_from_files(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, value: str,
        read: Any) -> None:
    """Mounted secrets: ``NAME_FILE`` names the file, as ROLLGUARD_SECRET_FILE does."""
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "rollguard")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "from-the-environment")
    monkeypatch.delenv(name, raising=False)
    (tmp_path / "secret").write_text(value + "\n")
    monkeypatch.setenv(f"{name}_FILE", str(tmp_path / "secret"))
    assert read(WorkerSettings.from_env()) == value


@pytest.mark.parametrize("name", ["ROLLGUARD_SECRET", "KAFKA_SASL_PASSWORD", "REDIS_URL"])
@pytest.mark.parametrize(("content", "both", "problem"), [
    (None, False, "cannot read"), ("  \n", False, "is empty"), ("x", True, "not both")])
def test_a_bad_secret_file_is_refused_by_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                              name: str, content: str | None, both: bool,
                                              problem: str) -> None:
    monkeypatch.setenv(name, "x")
    if not both:
        monkeypatch.delenv(name)
    if content is not None:
        (tmp_path / "secret").write_text(content)
    monkeypatch.setenv(f"{name}_FILE", str(tmp_path / "secret"))
    with pytest.raises(ConfigError, match=f"{name}.*{problem}"):
        secret_setting(name)


def test_settings_never_show_the_secret_or_a_password() -> None:
    settings = dataclasses.replace(WorkerSettings.from_env(),
                                   redis_url="redis://app:hunter2@db:6379/0")
    assert "hunter2" not in repr(settings) and "sekrit-for-tests" not in repr(settings)


def test_the_worker_makes_its_data_folder_or_says_in_one_line_why_not(tmp_path: Path) -> None:
    from rollguard.cli.worker import data_dir

    nested = tmp_path / "a" / "b" / "worker"
    data_dir(str(nested))
    assert nested.is_dir()
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match=r"^ROLLGUARD_DATA_DIR: cannot make the folder"):
        data_dir(str(blocker / "worker"))
