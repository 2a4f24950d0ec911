"""``rollguard operator add|remove|list``: who may sign commands and approvals with a key of
their own (actions/operators.py)."""

from __future__ import annotations

import click

from rollguard.actions.connect import async_redis_client
from rollguard.actions.operators import OperatorKey, OperatorRegistry, check_operator
from rollguard.base.errors import ConfigError
from rollguard.cli import run_or_exit
from rollguard.cli.pointer import _echo_json, _signing_secret, as_json
from rollguard.ops.operator_keys import KEY_FILE_ENV, keys_dir, write_key


@click.group("operator")
def operator_group() -> None:
    """Register operators and make their signing keys (add needs ROLLGUARD_SECRET)."""


@operator_group.command("add")
@click.argument("name")
@click.option("--keys-dir", "directory", default=None, metavar="DIR",
              help="Where to write NAME.key (mode 0600); default ROLLGUARD_OPERATOR_KEYS_DIR.")
def add(name: str, directory: str | None) -> None:
    """Register NAME (or give them a new key: the old one stops working) and write their key.

    Hand the file to NAME only; they point ROLLGUARD_OPERATOR_KEY_FILE at it. The key is
    derived from ROLLGUARD_SECRET, so only whoever holds the secret can make one.
    """
    try:
        check_operator(name)
        where = keys_dir(directory)
        where.mkdir(mode=0o700, parents=True, exist_ok=True)
    except (ConfigError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    secret = _signing_secret()

    async def work() -> OperatorKey:
        client = async_redis_client()
        try:
            return await OperatorRegistry(client).add(name, secret)
        finally:
            await client.aclose()

    key = run_or_exit(work)
    try:
        path = write_key(where, key)
    except OSError as exc:
        raise click.ClickException(f"cannot write {name}'s key into {where}: {exc.strerror}; "
                                   "run `rollguard operator add` again") from None
    click.echo(f"operator {key.name} registered (key generation {key.generation}); key "
               f"written to {path}: give it to {key.name} only ({KEY_FILE_ENV}={path})")


@operator_group.command("remove")
@click.argument("name")
def remove(name: str) -> None:
    """Revoke NAME's key: nothing they sign is accepted any more."""

    async def work() -> bool:
        client = async_redis_client()
        try:
            return await OperatorRegistry(client).remove(name)
        finally:
            await client.aclose()

    if not run_or_exit(work):
        raise click.ClickException(f"{name} is not a registered operator")
    click.echo(f"operator {name} removed: their key no longer signs")


@operator_group.command("list")
@as_json
def list_operators(as_json: bool) -> None:
    """Registered operators and the generation of their current key."""

    async def work() -> dict[str, int]:
        client = async_redis_client()
        try:
            return await OperatorRegistry(client).names()
        finally:
            await client.aclose()

    names = run_or_exit(work)
    if as_json:
        _echo_json({n: {"generation": abs(g), "revoked": g < 0} for n, g in names.items()})
        return
    for name, generation in names.items():
        click.echo(f"{name:<32} key {abs(generation)}{'  revoked' if generation < 0 else ''}")


COMMANDS = (operator_group,)
