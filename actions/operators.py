"""Operators' own signing keys, and the registry of who is an operator.

Each operator signs commands and approvals with a key of their own. The key is derived from
the deployment secret (``ROLLGUARD_SECRET``): HMAC-SHA256 of the operator's name and the
key's generation. So the worker, which holds the secret, checks any operator's signature
without a key stored anywhere, while an operator holding only their own key cannot make
another's (that would need the secret). ``rollguard operator add NAME`` (run by whoever holds
the secret) registers NAME and writes their key; adding a name again rotates the key (the
generation goes up, the old key stops working); ``rollguard operator remove NAME`` revokes it.

The registry is one Redis hash (:func:`rollguard.actions.keys.operators_key`): name → generation, a
negative generation for a revoked operator, so adding the name again never brings an old
key back. It holds no secret.

>>> key = derive_key(b"s3cret", "alice", 1)
>>> token = OperatorKey("alice", 1, key).token()
>>> OperatorKey.parse(token) == OperatorKey("alice", 1, key)
True
>>> "s3cret" in repr(OperatorKey.parse(token)) or key.hex() in repr(OperatorKey.parse(token))
False
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from typing import Any

from rollguard.actions.commands import Command, refusal
from rollguard.actions.connect import PERMISSION_ERRORS, TRANSIENT_ERRORS, AsyncClient, unavailable
from rollguard.actions.keys import operators_key
from rollguard.base.errors import ConfigError

OPERATOR_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
OPERATOR_NAME_RULE = "1-64 ASCII letters, digits, '.', '_', '@' or '-', a letter or digit first"
TOKEN_PREFIX = "rgop1"
# Separates the derivation of operator keys from every other use of the deployment secret.
DERIVATION_LABEL = b"rollguard operator key v1\x00"

# KEYS[1] - the operators hash; ARGV[1] - name; ARGV[2] - "add" or "remove"
# return the generation now registered (negative: revoked), or 0 when removing an unknown name
LUA_REGISTER = """
local generation = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if ARGV[2] == 'add' then
  generation = math.abs(generation) + 1
elseif generation > 0 then
  generation = -generation
else
  return generation
end
redis.call('HSET', KEYS[1], ARGV[1], generation)
return generation
"""


def check_operator(name: str) -> str:
    """``name`` if it is a valid operator name, else ConfigError.

    >>> check_operator("alice")
    'alice'
    >>> check_operator("")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    rollguard.detectors.errors.ConfigError: operator name must be 1-64 ASCII letters, ...: ''
    """
    if not isinstance(name, str) or not OPERATOR_NAME.fullmatch(name):
        raise ConfigError(f"operator name must be {OPERATOR_NAME_RULE}: {name!r}")
    return name


def derive_key(secret: bytes, name: str, generation: int) -> bytes:
    """Operator ``name``'s key of ``generation``, from the deployment secret."""
    if not secret:
        raise ConfigError("the deployment secret is empty")
    message = DERIVATION_LABEL + f"{check_operator(name)}\x00{int(generation)}".encode()
    return hmac.new(secret, message, hashlib.sha256).digest()


@dataclass(frozen=True)
class OperatorKey:
    """One operator's signing key; its text form (:meth:`token`) is what the key file holds."""

    name: str
    generation: int
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        check_operator(self.name)
        if self.generation < 1 or len(self.key) != 32:
            raise ConfigError("operator key: malformed")

    def token(self) -> str:
        return f"{TOKEN_PREFIX}:{self.name}:{self.generation}:{self.key.hex()}"

    @classmethod
    def parse(cls, text: str, where: str = "operator key") -> OperatorKey:
        """Read :meth:`token`'s text; the error names ``where``, never the key."""
        parts = text.strip().split(":")
        try:
            if len(parts) != 4 or parts[0] != TOKEN_PREFIX:
                raise ValueError
            return cls(parts[1], int(parts[2]), bytes.fromhex(parts[3]))
        except (ValueError, ConfigError):
            raise ConfigError(f"{where}: not an operator key (made by `rollguard operator "
                              "add NAME`)") from None


class OperatorRegistry:
    """Who is an operator, and the generation of their current key (one Redis hash)."""

    def __init__(self, client: AsyncClient, prefix: str | None = None) -> None:
        self.client = client
        self.key = operators_key(prefix)
        self._register = client.register_script(LUA_REGISTER)

    async def _change(self, name: str, how: str) -> int:
        try:
            result: Any = await self._register(keys=[self.key], args=[check_operator(name), how])
        except (*TRANSIENT_ERRORS, *PERMISSION_ERRORS) as exc:
            raise unavailable(exc) from exc
        return int(result)

    async def add(self, name: str, secret: bytes) -> OperatorKey:
        """Register ``name`` (or rotate their key) and return their new key."""
        generation = await self._change(name, "add")
        return OperatorKey(name, generation, derive_key(secret, name, generation))

    async def remove(self, name: str) -> bool:
        """Revoke ``name``'s key; False when ``name`` was no operator."""
        return await self._change(name, "remove") < 0

    async def generation(self, name: str) -> int | None:
        """The generation of ``name``'s current key; None when not (or no longer) registered."""
        if not OPERATOR_NAME.fullmatch(name):
            return None
        try:
            raw = await self.client.hget(self.key, name)
        except (*TRANSIENT_ERRORS, *PERMISSION_ERRORS) as exc:
            raise unavailable(exc) from exc
        generation = 0 if raw is None else int(raw)
        return generation if generation > 0 else None

    async def names(self) -> dict[str, int]:
        """Every registered operator (revoked ones with a negative generation)."""
        try:
            found = await self.client.hgetall(self.key)
        except (*TRANSIENT_ERRORS, *PERMISSION_ERRORS) as exc:
            raise unavailable(exc) from exc
        return {_text(k): int(v) for k, v in sorted(found.items())}


class Signatures:
    """Checks who signed a command: the deployment secret, or a registered operator with
    their current key. ``operator``: the one key a person's CLI holds (it has no secret
    to derive others' keys, so only that operator's signatures verify there)."""

    def __init__(self, secret: bytes, registry: OperatorRegistry,
                 operator: OperatorKey | None = None) -> None:
        self.secret = secret
        self.registry = registry
        self.operator = operator

    async def key_of(self, name: str) -> bytes | tuple[str, str]:
        """The key operator ``name`` signs with now, or why nothing they sign is valid
        (``(reason code, message)``): not registered, or revoked."""
        generation = await self.registry.generation(name)
        if generation is None:
            return "unknown_operator", (f"{name!r} is not a registered operator (rollguard "
                                        "operator add)")
        if self.operator is not None and self.operator.name == name:
            if self.operator.generation != generation:
                return "revoked_key", f"{name!r}'s key was replaced or revoked"
            return self.operator.key
        return derive_key(self.secret, name, generation)

    async def refusal(self, command: Command, at: float) -> tuple[str, str] | None:
        """Why ``command`` must be refused, as ``(reason code, message)``, or None."""
        if not command.signer:
            return refusal(command, self.secret, at)
        if command.signer != command.issued_by:
            return "signer_mismatch", (f"command {command.command_id} is issued by "
                                       f"{command.issued_by!r} but signed by {command.signer!r}")
        key = await self.key_of(command.signer)
        if isinstance(key, tuple):
            return key[0], f"command {command.command_id}: {key[1]}"
        return refusal(command, key, at)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
