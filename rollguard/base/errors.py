"""The one exception hierarchy of rollguard.

::

    RollguardError
    ├── ConfigError              a setting, policy or command line is wrong (names the field)
    │   └── AccessRefused        Kafka or Redis refused our login, certificate or a command
    │                            for lack of a permission (names the address and the
    │                            setting); retrying cannot help, so nothing retries it
    ├── ServiceUnavailable       Kafka or Redis does not answer (names the address)
    ├── InvalidEvent             an evaluation event is rejected (carries a short reason code)
    ├── StateError               stored detector state is corrupt or of an unknown version
    ├── RolloutRefused           a person's command does not fit a guarded rollout's state
    ├── MissingExtra             a part that needs ``rollguard[worker]`` is used without it
    │                            (also an ImportError)
    └── RollbackError            a pointer operation was not applied
        ├── UnknownService
        ├── UnknownRelease
        ├── UnknownComponent
        ├── ReleaseConflict      a release name re-registered with other contents
        ├── PointerConflict      the expected epoch no longer holds: someone flipped first
        ├── ServicePinned        the service refuses automatic flips
        └── CommandRefused       unsigned, wrongly signed or expired command

Library errors (redis, aiokafka) are translated at the edge with ``raise ... from exc`` so the
cause is kept. The root and the errors of the pure core (``ConfigError``, ``InvalidEvent``,
``StateError``, ``RolloutRefused``) are defined in :mod:`rollguard.detectors.errors`, which
imports nothing of the edges; they are re-exported here, so this module is the one place to
import any of them from.
"""

from __future__ import annotations

from rollguard.base.redact import redact, redact_text
from rollguard.detectors.errors import (
    ConfigError,
    InvalidEvent,
    RollguardError,
    RolloutRefused,
    StateError,
)

__all__ = [
    "AccessRefused",
    "CommandRefused",
    "ConfigError",
    "InvalidEvent",
    "MissingExtra",
    "PointerConflict",
    "ReleaseConflict",
    "RollbackError",
    "RollguardError",
    "RolloutRefused",
    "ServicePinned",
    "ServiceUnavailable",
    "StateError",
    "UnknownComponent",
    "UnknownRelease",
    "UnknownService",
]


class ServiceUnavailable(RollguardError):
    """A server (Kafka or Redis) did not answer at the configured address."""

    def __init__(self, what: str, address: str, detail: str = "") -> None:
        self.what = what
        self.address = redact(address)  # a URL may carry a password: never in a message
        message = f"{what} is not reachable at {self.address}"
        super().__init__(f"{message}: {redact_text(detail)}" if detail else message)


class AccessRefused(ConfigError):
    """A server (Kafka or Redis) answered but refused our credentials or certificate, or a
    command for lack of a permission; ``setting`` names the variables to fix. Retrying cannot
    help: whoever gets this stops and says so (it is a ConfigError, never a
    ServiceUnavailable that callers wait out).

    >>> str(AccessRefused("Redis", "rediss://app:pw@db:6380/0", "refused the login",
    ...                   "REDIS_URL"))
    'Redis at rediss://app:***@db:6380/0 refused the login (REDIS_URL)'
    """

    def __init__(self, what: str, address: str, problem: str, setting: str) -> None:
        self.what = what
        self.address = redact(address)
        self.setting = setting
        super().__init__(f"{what} at {self.address} {redact_text(problem)} ({setting})")


class MissingExtra(RollguardError, ImportError):
    """A part of rollguard that needs the ``worker`` extra (Faust, River, the command line's
    libraries) was used in an install without it; the message says what to install
    (:func:`rollguard.base.extras.missing_extra`)."""


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
