"""Pointer commands: what to change, who asked, why, and an HMAC signature with an expiry.

A command is signed either with the deployment secret (``signer`` empty: what rules issue,
and commands made before operators had keys of their own) or with one operator's key
(``signer`` the operator's name, who must also be ``issued_by``: actions/operators.py).
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

import orjson

from rollguard.base.errors import CommandRefused, ConfigError

Op = Literal["promote", "rollback", "pin", "unpin", "mark_stable", "rollout_start",
             "rollout_pause", "rollout_resume", "rollout_abort", "rollout_finish", "ramp"]
OPS: tuple[str, ...] = ("promote", "rollback", "pin", "unpin", "mark_stable", "rollout_start",
                        "rollout_pause", "rollout_resume", "rollout_abort", "rollout_finish",
                        "ramp")

# A command lives long enough to cross Kafka and a retry or two, not long enough to be replayed
# tomorrow.
DEFAULT_TTL_S = 300.0
# Clocks of the issuer and the executor may disagree a little.
CLOCK_SKEW_S = 30.0


@dataclass(frozen=True)
class Command:
    """One signed request to change a service's pointer.

    ``components`` empty means the whole release; ``percent`` set means a staged change (the
    candidate's share); for ``rollback``, ``cohorts`` are the cohorts to drop, for ``promote``
    the cohorts the candidate serves. ``issued_by`` is an operator name or ``rule:<name>``.
    ``expected_epoch`` set makes the command a compare-and-set: it is a conflict if the pointer
    moved. ``signer``: empty when signed with the deployment secret, else the operator whose
    key signed it. ``signature`` is the hex HMAC-SHA256 of :meth:`canonical`.
    """

    command_id: str
    idempotency_key: str
    service: str
    op: Op
    issued_by: str
    issued_at: float
    expires_at: float
    release: str | None = None
    components: tuple[str, ...] = ()
    percent: float | None = None
    cohorts: tuple[str, ...] = ()
    reason: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    expected_epoch: int | None = None
    force: bool = False
    signer: str = ""
    signature: str = ""

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ConfigError(f"command op must be one of {', '.join(OPS)}: {self.op!r}")
        if self.percent is not None and not 0.0 <= float(self.percent) <= 100.0:
            raise ConfigError(f"command percent must be between 0 and 100: {self.percent}")
        # Normalised so a command and its decoded copy encode (and sign) identically.
        object.__setattr__(self, "components", tuple(self.components))
        object.__setattr__(self, "cohorts", tuple(self.cohorts))
        if self.percent is not None:
            object.__setattr__(self, "percent", float(self.percent))
        object.__setattr__(self, "issued_at", float(self.issued_at))
        # Through JSON once, so what is signed is what a decoded copy holds (orjson writes
        # inf and nan as null, tuples as lists).
        object.__setattr__(self, "evidence", orjson.loads(orjson.dumps(self.evidence)))
        object.__setattr__(self, "expires_at", float(self.expires_at))

    @property
    def automatic(self) -> bool:
        """Issued by a rule rather than a person."""
        return self.issued_by.startswith("rule:")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def _encodable(self) -> dict[str, Any]:
        # A shallow field dict for encoding only: dataclasses.asdict deep-copies evidence and
        # took ~35 µs, paid twice per executed command (signature check, history entry).
        # orjson writes tuples as arrays, so the bytes are those of as_dict().
        return {name: getattr(self, name) for name in FIELD_NAMES}

    def canonical(self) -> bytes:
        """The bytes the signature covers: sorted-key compact JSON of every field but it.

        >>> c = Command("c1", "k1", "bot", "pin", "ann", 10.0, 20.0)
        >>> c.canonical()[:48]
        b'{"cohorts":[],"command_id":"c1","components":[],'
        """
        data = self._encodable()
        del data["signature"]
        if not data["signer"]:
            # left out, so a command signed before operators had keys still verifies
            del data["signer"]
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)

    def to_bytes(self) -> bytes:
        return orjson.dumps(self._encodable(), option=orjson.OPT_SORT_KEYS)

    @classmethod
    def from_bytes(cls, raw: bytes | str) -> Command:
        """Decode :meth:`to_bytes`; a malformed command raises CommandRefused."""
        try:
            data = orjson.loads(raw)
            return cls(**data)
        except (orjson.JSONDecodeError, TypeError, ConfigError) as exc:
            raise CommandRefused(f"malformed: {exc}") from exc


FIELD_NAMES = tuple(f.name for f in fields(Command))


def new_command(
    service: str,
    op: Op,
    issued_by: str,
    now: float,
    *,
    ttl_s: float = DEFAULT_TTL_S,
    idempotency_key: str | None = None,
    **fields: Any,
) -> Command:
    """A fresh unsigned command with a random id (the idempotency key defaults to the id)."""
    command_id = uuid.uuid4().hex
    return Command(
        command_id=command_id,
        idempotency_key=idempotency_key or command_id,
        service=service,
        op=op,
        issued_by=issued_by,
        issued_at=now,
        expires_at=now + ttl_s,
        **fields,
    )


def signature_of(command: Command, secret: bytes) -> str:
    return hmac.new(secret, command.canonical(), hashlib.sha256).hexdigest()


def sign(command: Command, secret: bytes) -> Command:
    """A copy of ``command`` carrying its HMAC-SHA256 signature.

    >>> c = sign(Command("c1", "k1", "bot", "pin", "ann", 10.0, 20.0), b"s3cret")
    >>> refusal(c, b"s3cret", now=15.0) is None
    True
    """
    if not secret:
        raise ConfigError("the signing secret is empty")
    unsigned = replace(command, signer="", signature="")
    return replace(unsigned, signature=signature_of(unsigned, secret))


def sign_as(command: Command, operator: str, key: bytes) -> Command:
    """A copy of ``command`` signed with ``operator``'s own key (who must have issued it).

    >>> c = sign_as(Command("c1", "k1", "bot", "pin", "ann", 10.0, 20.0), "ann", b"k" * 32)
    >>> c.signer, refusal(c, b"k" * 32, now=15.0)
    ('ann', None)
    """
    if command.issued_by != operator:
        raise ConfigError(f"a command issued by {command.issued_by!r} cannot be signed with "
                          f"{operator!r}'s key")
    signed = replace(command, signer=operator, signature="")
    return replace(signed, signature=signature_of(signed, key))


def refusal(command: Command, secret: bytes, now: float) -> tuple[str, str] | None:
    """Why ``command`` must be refused, as ``(reason code, message)``, or None if it is valid.

    >>> c = sign(Command("c1", "k1", "bot", "pin", "ann", 10.0, 20.0), b"s3cret")
    >>> refusal(c, b"s3cret", now=25.0)
    ('expired', 'command c1 expired at 20.000 (now 25.000)')
    >>> refusal(c, b"other", now=15.0)[0]
    'bad_signature'
    """
    if not command.signature:
        return "unsigned", f"command {command.command_id} carries no signature"
    if not hmac.compare_digest(command.signature, signature_of(command, secret)):
        return "bad_signature", f"command {command.command_id} has a wrong signature"
    if now > command.expires_at:
        return "expired", (
            f"command {command.command_id} expired at {command.expires_at:.3f} (now {now:.3f})"
        )
    if command.issued_at > now + CLOCK_SKEW_S:
        return "not_yet_valid", (
            f"command {command.command_id} is issued in the future ({command.issued_at:.3f})"
        )
    return None


def verify(command: Command, secret: bytes, now: float) -> Command:
    """Return ``command`` if signed with ``secret`` and not expired, else raise CommandRefused."""
    problem = refusal(command, secret, now)
    if problem is not None:
        raise CommandRefused(f"{problem[0]}: {problem[1]}")
    return command
