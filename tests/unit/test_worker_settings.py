"""Worker settings come from the environment; a wrong value is refused by name."""

from __future__ import annotations

import pytest

from rollguard.config import secret_from_env
from rollguard.errors import ConfigError
from streams.settings import DEFAULT_CHECKPOINT_S, VARIABLES, WorkerSettings


@pytest.mark.parametrize(("name", "value"), [
    ("ROLLGUARD_PARTITIONS", "0"), ("ROLLGUARD_PARTITIONS", "four"),
    ("ROLLGUARD_CHECKPOINT_S", "-1"), ("ROLLGUARD_CHECKPOINT_S", "soon"),
    ("ROLLGUARD_CHECKPOINT_S", "7200"), ("ROLLGUARD_CHECKPOINT_S", "nan"),
    ("ROLLGUARD_METRICS_ADDR", "9471"), ("ROLLGUARD_METRICS_ADDR", "localhost:"),
    ("ROLLGUARD_METRICS_ADDR", ":9471"), ("ROLLGUARD_METRICS_ADDR", "localhost:70000"),
    ("ROLLGUARD_METRICS_ADDR", "localhost:http"),
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


def test_every_setting_is_listed_for_help() -> None:
    assert "ROLLGUARD_CHECKPOINT_S" in {name for name, _, _ in VARIABLES}


@pytest.mark.parametrize(("value", "is_default"), [(None, True), ("", True), ("  ", True),
                                                   ("s3cret", False)])
def test_worker_and_cli_sign_with_the_same_secret(monkeypatch: pytest.MonkeyPatch,
                                                  value: str | None, is_default: bool) -> None:
    """Unset, empty or set, the worker's secret is the CLI's: a laptop's commands verify."""
    if value is None:
        monkeypatch.delenv("ROLLGUARD_SECRET", raising=False)
    else:
        monkeypatch.setenv("ROLLGUARD_SECRET", value)
    settings = WorkerSettings.from_env()
    assert (settings.secret, settings.secret_is_default) == secret_from_env()
    assert settings.secret_is_default is is_default
