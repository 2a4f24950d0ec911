"""Every Redis key and channel name of the pointer protocol, in one place.

All keys of one service share the hash tag ``{SERVICE}`` so that a Redis Cluster keeps them in
one slot, which the Lua scripts that change them (``actions/lua/``, the approvals' take)
require; every key a script touches is passed in its KEYS.

Every key and channel starts with the deployment's namespace, ``ROLLGUARD_NAMESPACE``
(default ``rollguard``), so deployments sharing one Redis never touch each other's pointers;
the changes channel also names the database number, as pub/sub ignores databases.

>>> ServiceKeys.of("support-bot", "rollguard").pointer
'rollguard:{support-bot}:pointer'
>>> ServiceKeys.of("support-bot", "rollguard", db=5).changes
'rollguard:{support-bot}:changes:5'
>>> ServiceKeys.of("support-bot", "rollguard").idempotency("k-1")
'rollguard:{support-bot}:idem:k-1'
>>> ServiceKeys.of("support-bot", "rollguard").pending
'rollguard:{support-bot}:pending'
>>> ServiceKeys.of("rollguard-drill", "rollguard").drill
'rollguard:{rollguard-drill}:drill'
>>> ServiceKeys.of("support-bot", "rollguard").pattern
'rollguard:{support-bot}:*'
>>> operators_key("rollguard")
'rollguard:operators'
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from rollguard.base.errors import ConfigError
from rollguard.detectors.names import SERVICE_NAME, SERVICE_NAME_RULE, is_service_name

PREFIX = "rollguard"  # the default namespace
NAMESPACE_ENV = "ROLLGUARD_NAMESPACE"
NAMESPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

__all__ = ["PREFIX", "SERVICE_NAME", "SERVICE_RULE", "ServiceKeys", "check_key", "check_service",
           "namespace", "operators_key", "pointer_pattern", "service_of_key",
           "service_of_pointer_key"]

SERVICE_RULE = SERVICE_NAME_RULE


def namespace(value: str | None = None) -> str:
    """The deployment's key prefix: ``value``, else ``ROLLGUARD_NAMESPACE``, else ``rollguard``.

    >>> namespace("team-a"), namespace()
    ('team-a', 'rollguard')
    """
    name = value if value is not None else os.environ.get(NAMESPACE_ENV, "").strip() or PREFIX
    if not NAMESPACE.fullmatch(name):
        raise ConfigError(f"{NAMESPACE_ENV}: must be 1-64 ASCII letters, digits, '.', '_' or "
                          f"'-', starting with a letter or digit: {name!r}")
    return name


def check_service(service: str) -> str:
    """Return ``service`` if it is a valid service name, else raise ConfigError."""
    if not is_service_name(service):
        raise ConfigError(f"service name must be {SERVICE_NAME_RULE}: {service!r}")
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
    return service if is_service_name(service) else None


@dataclass(frozen=True)
class ServiceKeys:
    """The keys and the change channel of one service."""

    service: str
    pointer: str  # STRING: the pointer state as JSON
    releases: str  # HASH: release name -> canonical release JSON (immutable)
    release_order: str  # ZSET: release name scored by registration time (unix seconds)
    history: str  # STREAM: one entry per command outcome
    changes: str  # pub/sub CHANNEL (of one database): the new pointer JSON after every change
    idempotency_prefix: str  # STRING per key, with a TTL: the command that used it
    spent_prefix: str  # STRING per command id, with a TTL: the command ran (a repeat is a replay)
    pending: str  # HASH: command id -> command JSON, rollbacks that wait for approval
    approvers: str  # HASH: command id -> JSON list of who approved it so far
    drill: str  # HASH: a drill service's record of its drills (rollguard/drill/)
    drill_claim: str  # STRING, with a TTL: the token of the drill under way
    pattern: str  # a SCAN MATCH pattern of every key above (service names hold no glob chars)
    # The channel readers of the protocol before the database was named subscribe to; written
    # too, for database 0 only, until 2027-06-30 (docs/pointer-protocol.md); "" elsewhere.
    legacy_changes: str = ""

    @classmethod
    def of(cls, service: str, prefix: str | None = None, db: int = 0) -> ServiceKeys:
        """``prefix`` None: :func:`namespace`; ``db``: the Redis database number."""
        base = f"{namespace(prefix)}:{{{check_service(service)}}}"
        return cls(
            service=service,
            pointer=f"{base}:pointer",
            releases=f"{base}:releases",
            release_order=f"{base}:release-order",
            history=f"{base}:history",
            changes=f"{base}:changes:{int(db)}",
            idempotency_prefix=f"{base}:idem:",
            spent_prefix=f"{base}:spent:",
            pending=f"{base}:pending",
            approvers=f"{base}:approvers",
            drill=f"{base}:drill",
            drill_claim=f"{base}:drill-claim",
            pattern=f"{base}:*",
            legacy_changes=f"{base}:changes" if int(db) == 0 else "",
        )

    def idempotency(self, key: str) -> str:
        return self.idempotency_prefix + key

    def spent(self, command_id: str) -> str:
        return self.spent_prefix + command_id


def pointer_pattern(prefix: str | None = None) -> str:
    """A SCAN MATCH pattern of every service's pointer key in the namespace.

    >>> pointer_pattern("rollguard")
    'rollguard:{*}:pointer'
    """
    return f"{namespace(prefix)}:{{*}}:pointer"


def service_of_pointer_key(key: bytes | str, prefix: str | None = None) -> str | None:
    """The service whose pointer ``key`` is (None when it is no pointer key of ``prefix``).

    >>> service_of_pointer_key(b"rollguard:{support-bot}:pointer", "rollguard")
    'support-bot'
    >>> service_of_pointer_key("team-a:{x}:pointer", "rollguard") is None
    True
    """
    text = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
    head, tail = f"{namespace(prefix)}:{{", "}:pointer"
    if not (text.startswith(head) and text.endswith(tail)):
        return None
    service = text[len(head):-len(tail)]
    return service if is_service_name(service) else None


def check_key(token: str, prefix: str | None = None) -> str:
    """A throw-away key (and channel) of ``rollguard check``'s Redis round trip.

    >>> check_key("0f3a", "rollguard")
    'rollguard:check:0f3a'
    """
    return f"{namespace(prefix)}:check:{token}"


def operators_key(prefix: str | None = None) -> str:
    """HASH: operator name -> the generation of their signing key, negative once revoked
    (actions/operators.py); no secret is stored."""
    return f"{namespace(prefix)}:operators"
