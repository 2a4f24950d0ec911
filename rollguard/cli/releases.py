"""``rollguard release register|list|show``: the immutable releases of a service."""

from __future__ import annotations

from pathlib import Path

import click

from rollguard.actions.releases import Release
from rollguard.base.errors import ConfigError
from rollguard.cli import check_text, run_or_exit
from rollguard.cli.pointer import _echo_json, _known, _store, _versions, _when, as_json
from rollguard.detectors.documents import read_document


@click.group("release")
def release_group() -> None:
    """Register, list and show immutable releases."""


def _components(pairs: tuple[str, ...], file: Path | None) -> dict[str, str]:
    found: dict[str, str] = {}
    if file is not None:
        data = read_document(file, "components file") or {}
        data = data.get("components", data) if isinstance(data, dict) else data
        if not isinstance(data, dict):
            raise ConfigError(f"{file}: expected a mapping of component: version")
        for name, version in data.items():
            if type(version) not in (str, int, float) or version == "":
                raise ConfigError(f"{file}: component {name}: the version must be a string "
                                  f"or a number, got {version!r}")
            found[str(name)] = str(version)
    for pair in pairs:
        name, sep, version = check_text("--component", pair).partition("=")
        if not sep:
            raise ConfigError(f"--component expects NAME=VERSION, got {pair!r}")
        found[name.strip()] = version.strip()
    if not found:
        raise ConfigError("a release needs at least one --component NAME=VERSION (or --file)")
    return found


@release_group.command("register")
@click.argument("service")
@click.argument("release")
@click.option("--component", "pairs", multiple=True, metavar="NAME=VERSION",
              help="model=..., prompt=..., index=..., policy=..., pipeline=... (repeatable).")
@click.option("--file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="YAML/JSON mapping of components (or {components: {...}}).")
@as_json
def register(service: str, release: str, pairs: tuple[str, ...], file: Path | None,
             as_json: bool) -> None:
    """Register RELEASE of SERVICE; names are immutable."""

    async def work() -> Release:
        async with _store() as store:
            return await store.register_release(service, release, _components(pairs, file))

    made = run_or_exit(work)
    if as_json:
        _echo_json(made.as_dict())
    else:
        click.echo(f"registered {service} {made.name}: {_versions(made.components)}")


@release_group.command("list")
@click.argument("service")
@as_json
def list_releases(service: str, as_json: bool) -> None:
    """Every release of SERVICE, oldest first."""

    async def work() -> list[tuple[Release, float]]:
        async with _store() as store:
            found = await store.releases(service)
            if not found:
                await _known(store, service)
            return found

    found = run_or_exit(work)
    if as_json:
        _echo_json([{**r.as_dict(), "registered_at": t} for r, t in found])
        return
    if not found:
        click.echo(f"{service} has no releases")
    for r, t in found:
        click.echo(f"{r.name:<32} {_when(t)}  {_versions(r.components)}")


@release_group.command("show")
@click.argument("service")
@click.argument("release")
@as_json
def show_release(service: str, release: str, as_json: bool) -> None:
    """The components of one release (and its origin if a rollback derived it)."""

    async def work() -> Release:
        async with _store() as store:
            return await store.release(service, release)

    found = run_or_exit(work)
    if as_json:
        _echo_json(found.as_dict())
        return
    click.echo(found.name)
    for name, version in found.components.items():
        click.echo(f"  {name:<10} {version}")
    if found.derived_from is not None:
        origin = found.derived_from
        click.echo(f"  derived from {origin.release}: {', '.join(origin.components)} "
                   f"set back to {origin.target}")


# -- status and history -------------------------------------------------------------------


COMMANDS = (release_group,)
