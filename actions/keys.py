"""Every Redis key and channel name of the pointer protocol, in one place.

All keys of one service share the hash tag ``{SERVICE}`` so that a Redis Cluster keeps them in
one slot, which the Lua scripts that change them (``actions/lua/``, the approvals' take)
require; every key a script touches is passed in its KEYS.

>>> ServiceKeys.of("support-bot").pointer
'rollguard:{support-bot}:pointer'
>>> ServiceKeys.of("support-bot").idempotency("k-1")
'rollguard:{support-bot}:idem:k-1'
>>> ServiceKeys.of("support-bot").pending
'rollguard:{support-bot}:pending'
>>> ServiceKeys.of("support-bot").pattern
'rollguard:{support-bot}:*'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rollguard.errors import ConfigError

PREFIX = "rollguard"

# Service names go inside keys and a hash tag: no braces, no spaces, no colons. Matched with
# fullmatch: "$" alone would let a trailing newline through.
SERVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
SERVICE_RULE = "1-128 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit"


def check_service(service: str) -> str:
    """Return ``service`` if it is a valid service name, else raise ConfigError."""
    if not SERVICE_NAME.fullmatch(service):
        raise ConfigError(
            f"service name must be {SERVICE_RULE}: {service!r}"
        )
    return service


def service_of_key(key: bytes) -> str | None:
    """The service a message key names, or None when it is no valid service name (not
    UTF-8, or not :data:`SERVICE_NAME`): such a key must never reach a Redis key.

    >>> service_of_key(b"support-bot"), service_of_key(b"a b"), service_of_key(b"\\xff")
    ('support-bot', None, None)
    """
    try:
        service = key.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return service if SERVICE_NAME.fullmatch(service) else None


@dataclass(frozen=True)
class ServiceKeys:
    """The keys and the change channel of one service."""

    service: str
    pointer: str  # STRING: the pointer state as JSON
    releases: str  # HASH: release name -> canonical release JSON (immutable)
    release_order: str  # ZSET: release name scored by registration time (unix seconds)
    history: str  # STREAM: one entry per command outcome
    changes: str  # pub/sub CHANNEL: the new pointer JSON after every applied change
    idempotency_prefix: str  # STRING per key, with a TTL: the command that used it
    spent_prefix: str  # STRING per command id, with a TTL: the command ran (a repeat is a replay)
    pending: str  # HASH: command id -> command JSON, rollbacks that wait for approval
    pattern: str  # a SCAN MATCH pattern of every key above (service names hold no glob chars)

    @classmethod
    def of(cls, service: str, prefix: str = PREFIX) -> ServiceKeys:
        base = f"{prefix}:{{{check_service(service)}}}"
        return cls(
            service=service,
            pointer=f"{base}:pointer",
            releases=f"{base}:releases",
            release_order=f"{base}:release-order",
            history=f"{base}:history",
            changes=f"{base}:changes",
            idempotency_prefix=f"{base}:idem:",
            spent_prefix=f"{base}:spent:",
            pending=f"{base}:pending",
            pattern=f"{base}:*",
        )

    def idempotency(self, key: str) -> str:
        return self.idempotency_prefix + key

    def spent(self, command_id: str) -> str:
        return self.spent_prefix + command_id


def check_key(token: str, prefix: str = PREFIX) -> str:
    """A throw-away key (and channel) of ``rollguard check``'s Redis round trip.

    >>> check_key("0f3a")
    'rollguard:check:0f3a'
    """
    return f"{prefix}:check:{token}"
