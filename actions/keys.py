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

from dataclasses import dataclass

from detectors.names import SERVICE_NAME, SERVICE_NAME_RULE, is_service_name
from rollguard.errors import ConfigError

PREFIX = "rollguard"

__all__ = ["PREFIX", "SERVICE_NAME", "ServiceKeys", "check_key", "check_service"]


def check_service(service: str) -> str:
    """Return ``service`` if it is a valid service name, else raise ConfigError."""
    if not is_service_name(service):
        raise ConfigError(f"service name must be {SERVICE_NAME_RULE}: {service!r}")
    return service


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
