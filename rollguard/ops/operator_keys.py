"""Where the command line finds an operator's own key, and where ``rollguard operator add``
writes one (actions/operators.py says what the key is).

In order: ``ROLLGUARD_OPERATOR_KEY`` (the key's text), ``ROLLGUARD_OPERATOR_KEY_FILE`` (a file
holding it), or ``ROLLGUARD_OPERATOR_KEYS_DIR/NAME.key`` for the name given with ``--by``.
A key file must be readable by its owner only (mode 0600), as ssh insists for its keys.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from rollguard.actions.operators import OPERATOR_NAME, OperatorKey, check_operator
from rollguard.base.errors import ConfigError

KEY_ENV = "ROLLGUARD_OPERATOR_KEY"
KEY_FILE_ENV = "ROLLGUARD_OPERATOR_KEY_FILE"
KEYS_DIR_ENV = "ROLLGUARD_OPERATOR_KEYS_DIR"
HOW = (f"ask whoever holds ROLLGUARD_SECRET to run `rollguard operator add NAME`, then set "
       f"{KEY_FILE_ENV} to the file it writes (or {KEYS_DIR_ENV} to its directory)")


def key_path(directory: Path, name: str) -> Path:
    return directory / f"{check_operator(name)}.key"


def keys_dir(given: str | None = None) -> Path:
    """The directory of key files: ``given``, else ``ROLLGUARD_OPERATOR_KEYS_DIR``."""
    value = given or os.environ.get(KEYS_DIR_ENV, "").strip()
    if not value:
        raise ConfigError(f"where to write the key: set {KEYS_DIR_ENV} or pass --keys-dir")
    return Path(value)


def write_key(directory: Path, key: OperatorKey) -> Path:
    """Write ``key`` to ``directory/NAME.key``, readable by its owner only."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = key_path(directory, key.name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # a file there before keeps its mode through O_CREAT
        os.write(fd, (key.token() + "\n").encode())
    finally:
        os.close(fd)
    return path


def read_key_file(path: Path) -> OperatorKey:
    """The key in ``path``; ConfigError if it is missing, open to others, or no key."""
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(f"operator key {path} is open to other users (mode "
                              f"{stat.S_IMODE(mode):04o}): chmod 600 {path}")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"operator key {path}: cannot read it: {exc.strerror}") from None
    return OperatorKey.parse(text, f"operator key {path}")


def operator_key(by: str | None = None) -> OperatorKey | None:
    """The operator key this command line signs with, or None when none is configured."""
    text = os.environ.get(KEY_ENV, "").strip()
    if text:
        return OperatorKey.parse(text, KEY_ENV)
    path = os.environ.get(KEY_FILE_ENV, "").strip()
    if path:
        return read_key_file(Path(path))
    directory = os.environ.get(KEYS_DIR_ENV, "").strip()
    if directory and by and OPERATOR_NAME.fullmatch(by):
        candidate = key_path(Path(directory), by)
        if candidate.exists():
            return read_key_file(candidate)
    return None
