"""`rollguard rollout ...` against the real Redis (click's CliRunner): start, status, pause,
resume, approve, abort, each a signed command in the history."""

from __future__ import annotations

import json

import pytest

from tests.integration.actions.test_cli_pointer import Run, fixture_cli, fixture_registered

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("servers")]
__all__ = ["fixture_cli", "fixture_registered"]


def status(cli: Run, service: str) -> dict:
    result = cli("rollout", "status", service, "--json")
    assert result.exit_code == 0, result.output
    data: dict = json.loads(result.stdout)
    return data


def test_start_serves_the_first_step_and_status_says_what_it_waits_for(
        cli: Run, registered: str) -> None:
    result = cli("rollout", "start", registered, "v2", "--steps", "5,50,100", "--by", "ann")
    assert result.exit_code == 0, result.output
    assert "started at 5%" in result.output
    shown = status(cli, registered)
    assert (shown["release"], shown["step"], shown["percent"], shown["status"]) == (
        "v2", 1, 5.0, "running")
    assert shown["started_by"] == "ann" and "then the move to 50%" in shown["waits_for"]
    text = cli("rollout", "status", registered).output
    assert "step       1 of 3 (5%" in text and "waits for" in text


def test_pause_resume_approve_and_abort_by_a_person(cli: Run, registered: str) -> None:
    assert cli("rollout", "start", registered, "v2", "--steps", "5,50,100").exit_code == 0
    assert cli("rollout", "pause", registered, "--by", "bo").exit_code == 0
    shown = status(cli, registered)
    assert shown["status"] == "paused" and "paused by bo" in shown["waits_for"]
    assert cli("rollout", "resume", registered).exit_code == 0
    assert status(cli, registered)["status"] == "running"
    assert cli("rollout", "approve", registered, "--by", "cy").exit_code == 0
    assert status(cli, registered)["percent"] == 50.0
    assert cli("rollout", "abort", registered, "--reason", "enough").exit_code == 0
    pointer = json.loads(cli("status", registered, "--json").stdout)
    assert (pointer["active"], pointer["candidate"]) == ("v1", None)
    none = cli("rollout", "status", registered)
    assert none.exit_code == 1 and "no rollout under way" in none.output
    history = json.loads(cli("history", registered, "--json").stdout)
    assert [h["op"] for h in history[-5:]] == [
        "rollout_start", "rollout_pause", "rollout_resume", "ramp", "rollout_abort"]


def test_a_bad_plan_is_refused(cli: Run, registered: str) -> None:
    result = cli("rollout", "start", registered, "v2", "--steps", "5,50")
    assert result.exit_code == 1 and "ending in 100" in result.output
