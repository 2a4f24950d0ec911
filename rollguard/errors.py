"""The one exception hierarchy of rollguard.

::

    RollguardError
    ├── ConfigError              a setting, policy or command line is wrong (names the field)
    ├── ServiceUnavailable       Kafka or Redis does not answer (names the address)
    ├── InvalidEvent             an evaluation event is rejected (carries a short reason code)
    ├── StateError               stored detector state is corrupt or of an unknown version
    └── RollbackError            a pointer operation was not applied
        ├── UnknownService
        ├── UnknownRelease
        ├── UnknownComponent
        ├── ReleaseConflict      a release name re-registered with other contents
        ├── PointerConflict      the expected epoch no longer holds: someone flipped first
        ├── ServicePinned        the service refuses automatic flips
        └── CommandRefused       unsigned, wrongly signed or expired command

Library errors (redis, aiokafka) are translated at the edge with ``raise ... from exc`` so
the cause is kept.
"""

from __future__ import annotations


class RollguardError(Exception):
    """Base class of every error rollguard raises on purpose."""


class ConfigError(RollguardError):
    """A setting, policy file or command-line value is wrong."""


class ServiceUnavailable(RollguardError):
    """A server (Kafka or Redis) did not answer at the configured address."""

    def __init__(self, what: str, address: str, detail: str = "") -> None:
        self.what = what
        self.address = address
        message = f"{what} is not reachable at {address}"
        super().__init__(f"{message}: {detail}" if detail else message)


class InvalidEvent(RollguardError):
    """An evaluation event was rejected; ``reason`` is a short, countable code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class StateError(RollguardError):
    """Serialised detector state cannot be read: corrupt, or written by another version."""


class RollbackError(RollguardError):
    """A version-pointer operation was not applied."""


class UnknownService(RollbackError):
    """No pointer or release exists for the named service."""


class UnknownRelease(RollbackError):
    """The named release is not registered for the service."""


class UnknownComponent(RollbackError):
    """The named component is not part of the release."""


class ReleaseConflict(RollbackError):
    """A release name was registered again with different contents."""


class PointerConflict(RollbackError):
    """The expected epoch no longer holds: another command flipped the pointer first."""


class ServicePinned(RollbackError):
    """The service is pinned: automatic flips are refused, manual ones need force."""


class CommandRefused(RollbackError):
    """The command is unsigned, wrongly signed or expired."""
