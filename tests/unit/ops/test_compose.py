"""docker-compose.yml (plaintext, a laptop) and docker-compose.secure.yml (production-like)
stay in step with the code: services, commands, variables, and for the secure one every
secret from a file that `python -m rollguard.ops.compose_secrets` makes, TLS and logins on both
servers, and the ACL lines of actions/acl.py."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import click
import pytest
import yaml

from rollguard.actions.acl import acl_line, writer_rules
from rollguard.cli import main
from rollguard.ops import compose_secrets
from rollguard.streams.settings import VARIABLES

ROOT = Path(__file__).parents[3]
PLAIN = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SECURE = yaml.safe_load((ROOT / "docker-compose.secure.yml").read_text())
BOTH = pytest.mark.parametrize("compose", [PLAIN, SECURE], ids=["plain", "secure"])
SECRET_VARIABLES = ("ROLLGUARD_SECRET", "KAFKA_SASL_PASSWORD", "REDIS_URL")


@pytest.fixture(name="made", scope="module")
def fixture_made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The secrets folder as `python -m rollguard.ops.compose_secrets` makes it."""
    folder = tmp_path_factory.mktemp("compose") / "secrets"
    compose_secrets.make_secrets(folder)
    return folder


def in_folder(made: Path, path: str, mounts: dict[str, str]) -> Path:
    """Where a container path (or ./secrets/...) lies in ``made``, through ``mounts``."""
    for inside, outside in mounts.items():
        if path.startswith(inside):
            path = outside + path[len(inside):]
    assert path.startswith("./secrets/"), path
    return made / path.removeprefix("./secrets/")


def bind_mounts(service: dict[str, Any]) -> dict[str, str]:
    found = (v.rsplit(":", 1)[0] if v.endswith(":ro") else v for v in service["volumes"])
    return {inside: outside for outside, inside in (v.split(":", 1) for v in found)
            if outside.startswith("./")}


def test_compose_runs_kafka_redis_the_worker_and_the_simulated_service() -> None:
    """The services a Docker user expects are there; the secure one formats Kafka first."""
    assert set(PLAIN["services"]) == {"kafka", "redis", "worker", "simulator"}
    assert set(SECURE["services"]) == {"kafka-format", "kafka", "redis", "worker", "simulator"}


@BOTH
def test_rollguard_containers_set_every_worker_variable_and_no_unknown_one(
        compose: dict[str, Any]) -> None:
    """Every variable the worker reads is set, and nothing it does not read."""
    names = {name for name, _, _ in VARIABLES}
    for service in ("worker", "simulator"):
        assert set(compose["services"][service]["environment"]) == names


@BOTH
def test_container_commands_are_real_rollguard_commands(compose: dict[str, Any]) -> None:
    """The commands the containers run exist in the CLI."""
    for service in ("worker", "simulator"):
        command = compose["services"][service]["command"][0]
        assert main.get_command(click.Context(main), command) is not None, command


@BOTH
def test_kafka_container_is_a_single_kraft_node(compose: dict[str, Any]) -> None:
    """The broker runs as combined broker+controller, like the local script's."""
    env = compose["services"]["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"


@pytest.mark.parametrize("service", ["worker", "simulator"])
@pytest.mark.parametrize("name", SECRET_VARIABLES)
def test_secure_containers_read_every_secret_from_a_mounted_file(
        service: str, name: str) -> None:
    """The variable itself is empty; ``NAME_FILE`` names a secret the container mounts."""
    container = SECURE["services"][service]
    env = container["environment"]
    assert env[name] == ""
    secret = env[f"{name}_FILE"].removeprefix("/run/secrets/")
    assert secret in container["secrets"] and secret in SECURE["secrets"]


def test_every_secret_file_the_secure_compose_names_is_made(made: Path) -> None:
    """Top-level secrets, bind-mounted folders, and the files the servers are told to read
    inside them: all made by rollguard.ops.compose_secrets."""
    named = [in_folder(made, s["file"], {}) for s in SECURE["secrets"].values()]
    kafka, redis = SECURE["services"]["kafka"], SECURE["services"]["redis"]
    kafka_env, kafka_mounts = kafka["environment"], bind_mounts(kafka)
    named += [in_folder(made, f"/etc/kafka/secrets/{kafka_env[v]}", kafka_mounts)
              for v in ("KAFKA_SSL_KEYSTORE_FILENAME", "KAFKA_SSL_KEYSTORE_CREDENTIALS",
                        "KAFKA_SSL_KEY_CREDENTIALS")]
    named += [in_folder(made, kafka_env["KAFKA_SSL_TRUSTSTORE_LOCATION"], kafka_mounts),
              in_folder(made, kafka_env["KAFKA_OPTS"].split("=", 1)[1], kafka_mounts)]
    named += [in_folder(made, arg, bind_mounts(redis)) for arg in redis["command"]
              if arg.startswith("/etc/redis/secrets/")]
    missing = [str(p) for p in named if not p.is_file()]
    assert not missing and len(named) >= 12


def test_secure_kafka_listens_only_on_sasl_ssl_with_the_users_the_formatter_adds(
        made: Path) -> None:
    env = SECURE["services"]["kafka"]["environment"]
    worker = SECURE["services"]["worker"]["environment"]
    protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert protocols == {"SASL_SSL": "SASL_SSL", "CONTROLLER": "PLAINTEXT"}
    assert env["KAFKA_ADVERTISED_LISTENERS"] == f"SASL_SSL://{worker['KAFKA_BOOTSTRAP']}"
    assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == worker["KAFKA_SASL_MECHANISM"]
    assert worker["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    formatter = SECURE["services"]["kafka-format"]
    users = re.findall(r"SCRAM-SHA-512=\[name=([\w-]+),password=\$\$\(cat /run/secrets/([\w-]+)\)",
                       formatter["command"][0])
    assert dict(users) == {"broker": "kafka-broker-password",
                           worker["KAFKA_SASL_USERNAME"]: "kafka-rollguard-password"}
    assert formatter["environment"]["CLUSTER_ID"] == env["CLUSTER_ID"]
    jaas = (made / "kafka" / "kafka_server_jaas.conf").read_text()
    broker_password = (made / "kafka-broker-password").read_text().strip()
    assert f'username="broker" password="{broker_password}"' in jaas


def test_secure_redis_is_tls_only_with_default_off_and_the_writer_of_actions_acl(
        made: Path) -> None:
    command = SECURE["services"]["redis"]["command"]
    options = dict(zip(command[1::2], command[2::2], strict=True))
    url = urlsplit((made / "redis-url-writer").read_text().strip())
    assert options["--port"] == "0" and options["--tls-port"] == str(url.port)
    assert url.scheme == "rediss" and url.hostname == "redis"
    assert parse_qs(url.query)["ssl_ca_certs"] == ["/run/secrets/ca.crt"]
    assert "ca.crt" in SECURE["services"]["worker"]["secrets"]
    acl = (made / "redis" / "users.acl").read_text().splitlines()
    assert acl[0] == "user default off"
    assert acl_line(compose_secrets.WRITER, url.password or "", writer_rules()) in acl
