"""Reading a policy or components file: bounded in size, in alias expansion and in depth.

A file is refused with a :class:`ConfigError` naming it when it is larger than
:data:`MAX_DOCUMENT_BYTES`, is not UTF-8, is not valid YAML/TOML, or is a YAML document whose
anchors and aliases would expand to more than :data:`MAX_EXPANDED_NODES` nodes (a "billion
laughs" bomb is a few hundred bytes that expand to billions): the expanded size is counted
on the composed node graph, each shared node once, before anything is built.

>>> yaml_document("a: &x [1, 2]\\nb: *x\\n", "f.yaml")
{'a': [1, 2], 'b': [1, 2]}
>>> bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\\n" + "".join(
...     f"{n}: &{n} [{', '.join(['*' + p] * 10)}]\\n" for p, n in zip("abcdefg", "bcdefgh"))
>>> yaml_document(bomb, "bomb.yaml")
Traceback (most recent call last):
...
rollguard.detectors.errors.ConfigError: bomb.yaml: anchors and aliases expand to more than 100000 values
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import yaml

from rollguard.detectors.errors import ConfigError

MAX_DOCUMENT_BYTES = 1_000_000
MAX_EXPANDED_NODES = 100_000
# libyaml's loader when PyYAML has it: ten times faster, and it refuses deep nesting at once.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_document(path: str | Path, what: str = "file") -> Any:
    """The decoded content of a YAML file (TOML when it ends in ``.toml``)."""
    source = Path(path)
    name = f"{what} {source}"
    try:
        with source.open("rb") as file:
            data = file.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{name}: cannot be read ({exc.strerror})") from exc
    if len(data) > MAX_DOCUMENT_BYTES:
        raise ConfigError(f"{name}: larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{name}: not UTF-8 text (byte {exc.start})") from None
    if source.suffix == ".toml":
        try:
            return tomllib.loads(text)
        except (tomllib.TOMLDecodeError, RecursionError) as exc:
            raise ConfigError(f"{name}: not valid toml: {_first_line(exc)}") from None
    return yaml_document(text, name)


def yaml_document(text: str, name: str) -> Any:
    """Decode YAML text with the safe loader, refusing a document that expands too far."""
    loader = _SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded(node, {}) > MAX_EXPANDED_NODES:
            raise ConfigError(f"{name}: anchors and aliases expand to more than "
                              f"{MAX_EXPANDED_NODES} values")
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: not valid yaml: {_first_line(exc)}") from None
    except RecursionError:
        raise ConfigError(f"{name}: nested too deeply") from None
    finally:
        loader.dispose()


def _expanded(node: yaml.Node, sizes: dict[int, int]) -> int:
    # Values the node stands for once every alias is expanded; each shared node counted once.
    known = sizes.get(id(node))
    if known is not None:
        return known
    sizes[id(node)] = MAX_EXPANDED_NODES + 1  # a cycle expands without end
    total = 1
    if isinstance(node, yaml.SequenceNode):
        for child in node.value:
            total += _expanded(child, sizes)
            if total > MAX_EXPANDED_NODES:
                break
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            total += _expanded(key, sizes) + _expanded(value, sizes)
            if total > MAX_EXPANDED_NODES:
                break
    sizes[id(node)] = total
    return total


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
