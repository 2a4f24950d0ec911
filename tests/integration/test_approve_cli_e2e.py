"""`rollguard approve` end to end, with a worker on the real broker and Redis whose policy
names the approvers: it waits for the outcome and exits 0 only when the approval was carried
out; a full rollback of a pinned service needs two different approvers."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import orjson
import pytest

from rollguard.actions.commands import Command, new_command, sign
from rollguard.actions.keys import operators_key
from rollguard.actions.pointer import PointerStore
from rollguard.streams.connect import prepare_topics
from tests.support.e2e import (
    new_service,
    send_commands,
    setup_service,
    wait_for_audit,
)
from tests.support.policies import default_policy_text
from tests.support.runs import IsolatedRun

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("servers")]

Names = dict[str, str]


@pytest.fixture(name="names")
def fixture_names() -> Names:
    """Operator names no other test (or engineer) uses on the shared Redis."""
    suffix = uuid.uuid4().hex[:8]
    return {who: f"{who}-{suffix}" for who in ("ana", "bob", "eve")}


@pytest.fixture(name="run")
async def fixture_run() -> AsyncIterator[IsolatedRun]:
    run = IsolatedRun.new("e2e-approve", partitions=1)
    yield run
    await run.delete_topics()


@pytest.fixture(name="keys")
def fixture_keys(run: IsolatedRun, names: Names, tmp_path: Path) -> Iterator[dict[str, Path]]:
    """Each operator registered with `rollguard operator add`, their key file written."""
    made = {}
    for who, name in names.items():
        added = cli(run, "operator", "add", name, "--keys-dir", str(tmp_path / "keys"))
        assert added.returncode == 0, added.stderr
        made[who] = tmp_path / "keys" / f"{name}.key"
    yield made
    subprocess.run(["redis-cli", "-u", run.env()["REDIS_URL"], "HDEL", operators_key(),
                    *names.values()], check=False, capture_output=True)


@pytest.fixture(name="worker")
def fixture_worker(run: IsolatedRun, names: Names, keys: dict[str, Path],
                   tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A worker whose policy lets ana and bob approve, two of them for a pinned service."""
    policy = tmp_path / "policy.yaml"
    default = default_policy_text()
    policy.write_text(default + f"\napprovals:\n  approvers: [{names['ana']}, {names['bob']}]"
                                "\n  pinned_full_rollback: 2\n", encoding="utf-8")
    process = run.start_worker(ROLLGUARD_POLICY=str(policy))
    yield process
    process.terminate()
    process.wait(30)


def cli(run: IsolatedRun, *args: str, key: Path | None = None,
        ) -> subprocess.CompletedProcess[str]:
    env = run.env(**({"ROLLGUARD_OPERATOR_KEY_FILE": str(key)} if key else {}))
    return subprocess.run([sys.executable, "-m", "rollguard.cli", *args], env=env,
                          capture_output=True, text=True, timeout=90)


async def waiting_rollback(run: IsolatedRun, store: PointerStore, service: str) -> Command:
    """A full rollback to v1 that waits for approval, as a rule with ``action: approve``."""
    epoch = (await store.read(service)).epoch
    waiting = sign(new_command(service, "rollback", "rule:quality", time.time(),
                               release="v1", expected_epoch=epoch), run.secret.encode())
    message = orjson.dumps({"type": "command", "approval": "required",
                            "command": waiting.as_dict()})
    await send_commands(run, [message], service)
    await wait_for_audit(run, lambda rs: any(r.get("command_id") == waiting.command_id
                                             and r["type"] == "approval-needed" for r in rs))
    return waiting


def test_operator_add_writes_a_key_only_its_owner_can_read(keys: dict[str, Path]) -> None:
    mode = stat.S_IMODE(os.stat(keys["ana"]).st_mode)
    assert mode == 0o600


async def test_only_the_policys_approvers_release_a_rollback_and_the_cli_says_what_happened(
        run: IsolatedRun, worker: subprocess.Popen[bytes], names: Names,
        keys: dict[str, Path]) -> None:
    service = new_service()
    store = await setup_service(run, service, canary_percent=50)
    waiting = await waiting_rollback(run, store, service)

    refused = cli(run, "approve", service, waiting.command_id, key=keys["eve"])
    assert refused.returncode == 1
    assert "not_an_approver" in refused.stderr and names["eve"] in refused.stderr
    recorded = (await store.history(service))[-1]
    assert (recorded["code"], recorded["issued_by"]) == ("not_an_approver", names["eve"])

    unknown = cli(run, "approve", service, "no-such-id", key=keys["ana"])
    assert unknown.returncode == 1 and "no command waits" in unknown.stderr
    nobody = cli(run, "approve", service, waiting.command_id, "--by", " ", key=keys["ana"])
    assert nobody.returncode == 1 and "approver must be named" in nobody.stderr
    posing = cli(run, "approve", service, waiting.command_id, "--by", names["bob"],
                 key=keys["ana"])
    assert posing.returncode == 1 and "signs for its owner only" in posing.stderr
    assert (await store.read(service)).candidate == "v2", "nothing ran yet"

    approved = cli(run, "approve", service, waiting.command_id, key=keys["ana"])
    assert approved.returncode == 0, approved.stderr
    assert "applied" in approved.stdout and names["ana"] in approved.stdout
    assert (await store.read(service)).candidate is None
    await store.client.aclose()


async def test_a_full_rollback_of_a_pinned_service_waits_for_a_second_approver(
        run: IsolatedRun, worker: subprocess.Popen[bytes], names: Names,
        keys: dict[str, Path]) -> None:
    service = new_service()
    store = await setup_service(run, service, canary_percent=50)
    (await store.issue(service, "pin", "admin")).raise_for_status()
    waiting = await waiting_rollback(run, store, service)

    first = cli(run, "approve", service, waiting.command_id, key=keys["ana"])
    assert first.returncode == 0, first.stderr
    assert "recorded" in first.stdout and "1 more approver" in first.stdout
    again = cli(run, "approve", service, waiting.command_id, key=keys["ana"])
    assert again.returncode == 1 and "same_approver" in again.stderr
    assert (await store.read(service)).candidate == "v2", "one approver is not enough"

    second = cli(run, "approve", service, waiting.command_id, "--json", key=keys["bob"])
    assert second.returncode == 0, second.stderr
    outcome = orjson.loads(second.stdout)
    assert (outcome["status"], outcome["approved_by"]) == (
        "applied", f"{names['ana']}, {names['bob']}")
    state = await store.read(service)
    assert (state.candidate, state.pinned) == (None, True)
    await store.client.aclose()


async def test_an_approval_nobody_answers_fails_after_the_timeout(
        run: IsolatedRun, keys: dict[str, Path]) -> None:
    """No worker reads the commands topic: the CLI says so and exits 1, not "sent"."""
    await prepare_topics(run.settings())
    started = time.monotonic()
    unanswered = cli(run, "approve", new_service(), "c-1", "--timeout", "2", key=keys["ana"])
    assert unanswered.returncode == 1
    assert "no outcome" in unanswered.stderr and "within 2 s" in unanswered.stderr
    assert time.monotonic() - started >= 2
