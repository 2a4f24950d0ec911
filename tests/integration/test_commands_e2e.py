"""The commands topic end to end, with a worker on the real broker and Redis: a rollback
that waits for `rollguard approve`, and bad commands refused where everyone can see them."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.admin import RecordsToDelete

from rollguard.actions.commands import Command, new_command, sign
from rollguard.actions.keys import operators_key
from rollguard.actions.operators import OperatorRegistry
from rollguard.streams.connect import new_admin_client, prepare_topics
from tests.support.e2e import (
    new_service,
    send_commands,
    setup_service,
    wait_for_audit,
)
from tests.support.runs import IsolatedRun

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("servers")]


@pytest.fixture(name="run")
async def fixture_run() -> AsyncIterator[IsolatedRun]:
    run = IsolatedRun.new("e2e-cmd", partitions=1)
    yield run
    await run.delete_topics()


@pytest.fixture(name="worker")
def fixture_worker(run: IsolatedRun) -> Iterator[subprocess.Popen[bytes]]:
    process = run.start_worker()
    yield process
    process.terminate()
    process.wait(30)


def on_topic(command: Command, approval: str | None = None) -> bytes:
    return orjson.dumps({"type": "command", "approval": approval, "command": command.as_dict()})


def outcomes(records: list[dict[str, Any]], command_id: str) -> list[dict[str, Any]]:
    return [r for r in records if r.get("type") == "outcome" and r["command_id"] == command_id]


async def test_a_rollback_waiting_for_approval_runs_when_approved_from_the_command_line(
        run: IsolatedRun, worker: subprocess.Popen[bytes]) -> None:
    """`rollguard approve SERVICE ID`, signed with the operator key in ROLLGUARD_OPERATOR_KEY,
    releases the waiting rollback, once."""
    service = new_service()
    store = await setup_service(run, service, canary_percent=50)
    secret = run.secret.encode()
    waiting = sign(new_command(service, "rollback", "rule:latency", time.time(),
                               release="v1", reason="slower"), secret)
    await send_commands(run, [on_topic(waiting, approval="required")], service)
    await wait_for_audit(run, lambda rs: any(r.get("type") == "approval-needed" for r in rs))
    assert (await store.read(service)).candidate == "v2", "nothing runs before the approval"
    ana = await OperatorRegistry(store.client).add(f"ana-{service}", secret)
    try:
        approve = subprocess.run(
            [sys.executable, "-m", "rollguard.cli", "approve", service, waiting.command_id],
            env=run.env(ROLLGUARD_OPERATOR_KEY=ana.token()), capture_output=True, text=True,
            timeout=60)
    finally:
        await store.client.hdel(operators_key(), ana.name)
    assert approve.returncode == 0, approve.stderr
    assert ana.key.hex() not in approve.stdout + approve.stderr
    records = await wait_for_audit(run, lambda rs: bool(outcomes(rs, waiting.command_id)))
    [outcome] = outcomes(records, waiting.command_id)
    assert (outcome["status"], outcome["approved_by"]) == ("applied", ana.name)
    assert (await store.read(service)).candidate is None
    await store.client.aclose()


async def test_forged_wrongly_signed_expired_and_replayed_commands_are_refused_and_recorded(
        run: IsolatedRun, worker: subprocess.Popen[bytes]) -> None:
    """Each is refused, in the service's Redis history and on the audit topic; the pointer
    stays where the one good command (a staged cut, as rules issue) left it."""
    service = new_service()
    store = await setup_service(run, service, canary_percent=50)
    secret = run.secret.encode()

    def fresh(**fields: Any) -> Command:
        return new_command(service, "rollback", "rule:quality", time.time(), **fields)

    good = sign(fresh(percent=20.0), secret)
    await send_commands(run, [on_topic(good)], service)
    await wait_for_audit(run, lambda rs: bool(outcomes(rs, good.command_id)))
    epoch = (await store.read(service)).epoch
    bad = {
        "bad_signature": replace(sign(fresh(percent=5.0), secret), percent=0.0),  # forged
        "expired": sign(fresh(percent=5.0, ttl_s=-1.0), secret),
        "replayed": good,
        "op_not_allowed": sign(new_command(service, "promote", "ops", time.time(),
                                           release="v2"), secret),
    }
    wrong = sign(fresh(percent=5.0), b"not-the-secret")
    await send_commands(run, [on_topic(c) for c in (*bad.values(), wrong)], service)
    records = await wait_for_audit(
        run, lambda rs: len(outcomes(rs, good.command_id)) == 2
        and all(outcomes(rs, c.command_id) for c in (*bad.values(), wrong)))
    history = await store.history(service)
    for code, command in [*bad.items(), ("bad_signature", wrong)]:
        refused = outcomes(records, command.command_id)[-1]
        assert (refused["status"], refused["code"], refused["recorded"]) == (
            "refused", code, True)
        assert any(h["command_id"] == command.command_id and h["code"] == code
                   for h in history), code
    state = await store.read(service)
    assert (state.epoch, state.percent) == (epoch, 20.0)
    await store.client.aclose()


async def test_commands_deleted_before_a_new_group_reads_them_are_a_gap_taken_at_once(
        run: IsolatedRun) -> None:
    """The first two commands were deleted (retention) before the group first read the
    topic: the worker expects offset 0, reads from the log start (2), asks the broker for
    it at its first seek again and takes 0..1 as absent (one warning naming them, not the
    30 s of retries), then carries out the command at offset 2; the deleted ones never."""
    service = new_service()
    store = await setup_service(run, service, canary_percent=50)
    await prepare_topics(run.settings())
    cuts = [sign(new_command(service, "rollback", "rule:quality", time.time(), percent=p),
                 run.secret.encode()) for p in (40.0, 30.0, 20.0)]
    await send_commands(run, [on_topic(c) for c in cuts], service)
    admin = new_admin_client()
    await admin.start()
    try:
        await admin.delete_records({TopicPartition(run.topic("commands"), 0):
                                    RecordsToDelete(before_offset=2)})
    finally:
        await admin.close()
    worker = run.start_worker()
    try:
        records = await wait_for_audit(run, lambda rs: bool(outcomes(rs, cuts[2].command_id)))
    finally:
        worker.terminate()
        worker.wait(30)
    assert [r["status"] for r in outcomes(records, cuts[2].command_id)] == ["applied"]
    assert not outcomes(records, cuts[0].command_id) + outcomes(records, cuts[1].command_id)
    assert (await store.read(service)).percent == 20.0
    log = (Path(".rollguard/runs") / f"{run.run_id}.log").read_text()
    assert (f"topic '{run.topic('commands')}' partition 0: offsets 0..1 taken as absent (below "
            "the partition's log start offset 2: deleted)") in log
    await store.client.aclose()
