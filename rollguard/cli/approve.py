"""``rollguard approve``: sign an approval with the approver's own key, send it to the
commands topic, and wait on the audit topic for what the actuator made of it."""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

import click
import orjson

from rollguard.base.errors import ConfigError, RollguardError
from rollguard.cli import check_text, run_or_exit
from rollguard.ops.operator_keys import HOW, operator_key

if TYPE_CHECKING:
    from rollguard.streams.settings import WorkerSettings

DEFAULT_TIMEOUT_S = 30.0


def verdict(record: dict[str, Any]) -> tuple[bool, str]:
    """Whether an audit record of an approval means it was carried out, and what to print.

    >>> verdict({"type": "outcome", "status": "applied", "message": "rolled chat back to v1",
    ...          "epoch_before": 3, "epoch_after": 4})
    (True, 'applied: rolled chat back to v1 (epoch 3 -> 4)')
    >>> verdict({"type": "outcome", "status": "refused", "code": "not_an_approver",
    ...          "message": "eve may not approve"})
    (False, 'refused (not_an_approver): eve may not approve')
    """
    kind = record.get("type")
    if kind == "approval-recorded":
        return True, f"recorded: {record.get('message', '')}"
    if kind == "outcome" and record.get("status") in ("applied", "already_applied"):
        epochs = f" (epoch {record.get('epoch_before')} -> {record.get('epoch_after')})"
        return True, f"{record['status']}: {record.get('message', '')}{epochs}"
    why = record.get("message") or record.get("why") or ""
    return False, f"{record.get('status', 'refused')} ({record.get('code', '')}): {why}"


async def _send_and_wait(settings: WorkerSettings, service: str, message: bytes, approval_id: str,
                         timeout_s: float) -> dict[str, Any] | None:
    from rollguard.streams.connect import producer, tail

    # Positioned at the end before the approval leaves, so its outcome cannot be missed.
    async with tail(settings.topic_audit, bootstrap=settings.kafka_bootstrap) as audit:
        async with producer(settings.kafka_bootstrap) as out:
            await out.send_and_wait(settings.topic_commands, message, key=service.encode())
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for batch in (await audit.getmany(timeout_ms=200)).values():
                for received in batch:
                    record = _loads(received.value)
                    if record.get("approval_id") == approval_id:
                        return record
    return None


def _loads(value: bytes | None) -> dict[str, Any]:
    try:
        record = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return {}
    return record if isinstance(record, dict) else {}


@click.command("approve")
@click.argument("service")
@click.argument("command_id")
@click.option("--by", "by", default=None,
              help="Who approves: the owner of the operator key (the default).")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0.1), default=DEFAULT_TIMEOUT_S,
              show_default=True, help="Seconds to wait for the actuator's outcome.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome record as JSON.")
def approve(service: str, command_id: str, by: str | None, timeout_s: float,
            as_json: bool) -> None:
    """Approve a rollback of SERVICE that waits for a person, and wait for the outcome.

    The alert that asks for approval names both (``rollguard approve SERVICE COMMAND_ID``).
    The approval is signed with your operator key (ROLLGUARD_OPERATOR_KEY_FILE). Exits 0
    once the rollback ran, or your approval is recorded and it waits for another approver;
    1 when refused (unknown id, not an allowed approver, ...) or no outcome came in time.
    """
    from rollguard.actions.approvals import approval
    from rollguard.actions.keys import check_service
    from rollguard.streams.settings import WorkerSettings

    try:
        # The approval is signed with the operator's key: the deployment secret is not used.
        settings = WorkerSettings.from_env(dev=True)
        check_service(service)
        check_text("command id", command_id)
        if by is not None and not by.strip():
            raise ConfigError("--by: an approver must be named")
        key = operator_key(check_text("--by", by) if by else None)
        if key is None:
            raise ConfigError(f"approving needs your own operator key: {HOW}")
        if by is not None and by != key.name:
            raise ConfigError(f"--by {by} but the operator key is {key.name}'s: a key signs "
                              "for its owner only")
    except RollguardError as exc:
        raise click.ClickException(str(exc)) from None
    approval_id = uuid.uuid4().hex
    message = approval(service, command_id, key.name, key.key, time.time(), approval_id)

    async def work() -> dict[str, Any] | None:
        return await _send_and_wait(settings, service, message, approval_id, timeout_s)

    record = run_or_exit(work)
    if record is None:
        raise click.ClickException(
            f"approval of {command_id} by {key.name} sent to {settings.topic_commands}, but "
            f"no outcome on {settings.topic_audit} within {timeout_s:g} s: is a worker "
            "running? It may still be carried out (rollguard history " f"{service})")
    ok, text = verdict(record)
    if as_json:
        click.echo(orjson.dumps(record, option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(f"approval of {command_id} by {key.name}: {text}", err=not ok)
    if not ok:
        raise SystemExit(1)


COMMANDS = (approve,)
