"""Releases: immutable, named bundles of component versions, and the derived ones rollbacks make."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from rollguard.base.errors import ConfigError, UnknownComponent

STANDARD_COMPONENTS = ("model", "prompt", "index", "policy", "pipeline")

# '~' is reserved for derived releases, so an operator can never register a name that looks
# like one and a derived name always tells where it came from.
RELEASE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
COMPONENT_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class Derivation:
    """How a derived release was made: ``components`` of ``release`` set back to ``target``'s."""

    release: str
    components: tuple[str, ...]
    target: str


@dataclass(frozen=True)
class Release:
    """An immutable bundle of component versions (``model``, ``prompt``, ``index``, ...).

    >>> r = Release("v2", {"prompt": "p8", "model": "m-2.4"})
    >>> r.to_json()
    b'{"components":{"model":"m-2.4","prompt":"p8"},"derived_from":null,"name":"v2"}'
    >>> Release.from_json(r.to_json()) == r
    True
    """

    name: str
    components: dict[str, str]
    derived_from: Derivation | None = field(default=None)

    def __post_init__(self) -> None:
        if not self.components:
            raise ConfigError(f"release {self.name!r}: needs at least one component")
        for key, value in self.components.items():
            if not COMPONENT_NAME.match(key):
                raise ConfigError(
                    f"release {self.name!r}: component name must be lower-case letters, digits,"
                    f" '_' or '-': {key!r}"
                )
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"release {self.name!r}: component {key!r} needs a version")
        # Sorted once here so equal releases encode to equal bytes.
        object.__setattr__(self, "components", dict(sorted(self.components.items())))

    def to_json(self) -> bytes:
        """Canonical JSON (sorted keys, no spaces): equal releases give equal bytes."""
        return orjson.dumps(self.as_dict(), option=orjson.OPT_SORT_KEYS)

    def as_dict(self) -> dict[str, Any]:
        origin = self.derived_from
        return {
            "name": self.name,
            "components": dict(self.components),
            "derived_from": None
            if origin is None
            else {
                "release": origin.release,
                "components": list(origin.components),
                "target": origin.target,
            },
        }

    @classmethod
    def from_json(cls, raw: bytes | str) -> Release:
        data = orjson.loads(raw)
        origin = data.get("derived_from")
        return cls(
            name=data["name"],
            components=dict(data["components"]),
            derived_from=None
            if origin is None
            else Derivation(origin["release"], tuple(origin["components"]), origin["target"]),
        )


def new_release(name: str, components: Mapping[str, str]) -> Release:
    """An operator-registered release; checks the name (derived names are made, not chosen)."""
    if not RELEASE_NAME.match(name):
        raise ConfigError(
            f"release name must be 1-128 letters, digits, '.', '_', '+' or '-': {name!r}"
        )
    return Release(name, dict(components))


def derive(
    watched: Release, target: Release, components: Sequence[str], releases: Mapping[str, Release]
) -> Release:
    """The release ``watched`` with ``components`` set back to ``target``'s versions.

    Deriving again from a derived release with the same target folds the components into one
    name, so two partial rollbacks read ``v2~rollback(model,prompt)->v1``, not a chain.

    >>> v1 = Release("v1", {"model": "m1", "prompt": "p1", "index": "i1"})
    >>> v2 = Release("v2", {"model": "m2", "prompt": "p2", "index": "i1"})
    >>> d = derive(v2, v1, ["prompt"], {})
    >>> d.name, d.components
    ('v2~rollback(prompt)->v1', {'index': 'i1', 'model': 'm2', 'prompt': 'p1'})
    >>> derive(d, v1, ["model"], {"v2": v2}).name
    'v2~rollback(model,prompt)->v1'
    """
    chosen = sorted(set(components))
    for name in chosen:
        if name not in watched.components:
            raise UnknownComponent(
                f"release {watched.name!r} has no component {name!r}"
                f" (it has {', '.join(watched.components)})"
            )
        if name not in target.components:
            raise UnknownComponent(f"release {target.name!r} has no component {name!r}")
    origin, base = watched, watched
    if watched.derived_from is not None and watched.derived_from.target == target.name:
        original = releases.get(watched.derived_from.release)
        if original is not None:
            chosen = sorted(set(chosen) | set(watched.derived_from.components))
            origin, base = original, original
    mixed = dict(base.components)
    mixed.update({name: target.components[name] for name in chosen})
    return Release(
        name=f"{origin.name}~rollback({','.join(chosen)})->{target.name}",
        components=mixed,
        derived_from=Derivation(origin.name, tuple(chosen), target.name),
    )
