"""docker-compose.yml stays in step with the code: services, commands and variables."""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from rollguard.cli import main
from streams.settings import VARIABLES

COMPOSE = yaml.safe_load((Path(__file__).parents[2] / "docker-compose.yml").read_text())


def test_compose_runs_kafka_redis_the_worker_and_the_simulated_service() -> None:
    """The four services a Docker user expects are there."""
    assert set(COMPOSE["services"]) == {"kafka", "redis", "worker", "simulator"}


def test_rollguard_containers_set_every_worker_variable_and_no_unknown_one() -> None:
    """Every variable the worker reads is set, and nothing it does not read."""
    names = {name for name, _, _ in VARIABLES}
    for service in ("worker", "simulator"):
        assert set(COMPOSE["services"][service]["environment"]) == names


def test_container_commands_are_real_rollguard_commands() -> None:
    """The commands the containers run exist in the CLI."""
    for service in ("worker", "simulator"):
        command = COMPOSE["services"][service]["command"][0]
        assert main.get_command(click.Context(main), command) is not None, command


def test_kafka_container_is_a_single_kraft_node() -> None:
    """The broker runs as combined broker+controller, like the local script's."""
    env = COMPOSE["services"]["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
