"""Kafka security settings: read as Kafka users name them, bad combinations refused by name,
and turned into the same aiokafka and Faust settings for every part."""

from __future__ import annotations

from pathlib import Path

import faust
import pytest

from rollguard.base.config import KafkaSecurity
from rollguard.base.errors import ConfigError
from rollguard.streams.connect import client_options, faust_credentials

SETTINGS = ("KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME",
            "KAFKA_SASL_PASSWORD", "KAFKA_SSL_CAFILE", "KAFKA_SSL_CERTFILE", "KAFKA_SSL_KEYFILE")


@pytest.fixture(name="env")
def fixture_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize(("values", "named"), [
    ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "u"}, "KAFKA_SASL_PASSWORD"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "GSSAPI",
      "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "pw-9f3"}, "KAFKA_SASL_MECHANISM"),
    ({"KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "pw-9f3"}, "KAFKA_SECURITY_PROTOCOL"),
    ({"KAFKA_SSL_CAFILE": "/ca.pem"}, "KAFKA_SECURITY_PROTOCOL"),
    ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CERTFILE": "/c.pem"}, "KAFKA_SSL_KEYFILE"),
    ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": "/nowhere.pem"}, "KAFKA_SSL_CAFILE"),
], ids=["protocol", "no-password", "mechanism", "sasl-without-sasl", "tls-file-without-tls",
        "cert-without-key", "missing-file"])
def test_an_invalid_combination_is_refused_naming_the_variable(
        env: pytest.MonkeyPatch, values: dict[str, str], named: str) -> None:
    for name, value in values.items():
        env.setenv(name, value)
    with pytest.raises(ConfigError, match=named) as refused:
        KafkaSecurity.from_env()
    assert values.get("KAFKA_SASL_PASSWORD", "never-there") not in str(refused.value)


def test_nothing_set_means_plaintext(env: pytest.MonkeyPatch) -> None:
    assert KafkaSecurity.from_env() == KafkaSecurity()
    assert client_options() == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials() is None


def test_sasl_ssl_gives_aiokafka_and_faust_the_same_login(env: pytest.MonkeyPatch) -> None:
    env.setenv("KAFKA_SECURITY_PROTOCOL", "sasl_ssl")  # as Kafka's own clients, any case
    env.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    env.setenv("KAFKA_SASL_USERNAME", "app")
    env.setenv("KAFKA_SASL_PASSWORD", "hunter2")
    options = client_options()
    assert {k: options[k] for k in ("security_protocol", "sasl_mechanism",
                                    "sasl_plain_username", "sasl_plain_password")} == {
        "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "app", "sasl_plain_password": "hunter2"}
    assert options["ssl_context"] is not None
    credentials = faust_credentials()
    assert isinstance(credentials, faust.SASLCredentials)
    assert (credentials.protocol.value, credentials.mechanism.value, credentials.username,
            credentials.password) == ("SASL_SSL", "SCRAM-SHA-512", "app", "hunter2")
    assert "hunter2" not in repr(KafkaSecurity.from_env())


def test_ssl_alone_gives_faust_a_tls_context(env: pytest.MonkeyPatch) -> None:
    env.setenv("KAFKA_SECURITY_PROTOCOL", "SSL")
    assert isinstance(faust_credentials(), faust.SSLCredentials)


def test_a_client_certificate_that_cannot_be_loaded_names_the_settings(
        env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("cert.pem", "key.pem"):
        (tmp_path / name).write_text("not a certificate")
    env.setenv("KAFKA_SECURITY_PROTOCOL", "SSL")
    env.setenv("KAFKA_SSL_CERTFILE", str(tmp_path / "cert.pem"))
    env.setenv("KAFKA_SSL_KEYFILE", str(tmp_path / "key.pem"))
    with pytest.raises(Exception, match="KAFKA_SSL_CERTFILE"):
        client_options()
