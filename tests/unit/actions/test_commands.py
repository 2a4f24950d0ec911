"""Commands: canonical encoding, HMAC signing and refusal reasons (pure, no I/O)."""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

import orjson
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from rollguard.actions.commands import Command, new_command, refusal, sign, verify
from rollguard.base.errors import CommandRefused, ConfigError

SECRET = b"unit-secret"

evidence = st.dictionaries(
    st.text(max_size=8),
    st.one_of(st.floats(), st.integers(-(2**53), 2**53), st.text(max_size=8)),
    max_size=4,
)
commands = st.builds(
    Command,
    command_id=st.text(min_size=1, max_size=12),
    idempotency_key=st.text(min_size=1, max_size=12),
    service=st.just("bot"),
    op=st.sampled_from(["promote", "rollback", "pin", "unpin", "mark_stable"]),
    issued_by=st.sampled_from(["ann", "rule:error-rate"]),
    issued_at=st.floats(0, 2e9),
    expires_at=st.floats(0, 2e9),
    release=st.one_of(st.none(), st.text(max_size=8)),
    components=st.lists(st.sampled_from(["model", "prompt", "index"]), max_size=3).map(tuple),
    percent=st.one_of(st.none(), st.floats(0, 100), st.integers(0, 100)),
    cohorts=st.lists(st.text(max_size=5), max_size=3).map(tuple),
    reason=st.text(max_size=20),
    evidence=evidence,
    expected_epoch=st.one_of(st.none(), st.integers(0, 10**9)),
    force=st.booleans(),
)


@given(commands)
def test_a_signed_command_survives_encoding_and_still_verifies(command: Command) -> None:
    """to_bytes/from_bytes gives an equal command whose signature still checks out."""
    signed = sign(command, SECRET)
    decoded = Command.from_bytes(signed.to_bytes())
    assert decoded == signed
    assert decoded.canonical() == signed.canonical()
    assume(signed.issued_at <= signed.expires_at)
    assert refusal(decoded, SECRET, now=signed.expires_at) is None


@given(commands, st.sampled_from(["release", "percent", "issued_by", "force", "expected_epoch"]))
def test_changing_any_signed_field_breaks_the_signature(command: Command, name: str) -> None:
    """Altering a field after signing is detected."""
    signed = sign(command, SECRET)
    changed: Any = {
        "release": (signed.release or "") + "x",
        "percent": 7.5 if signed.percent != 7.5 else 8.5,
        "issued_by": signed.issued_by + "x",
        "force": not signed.force,
        "expected_epoch": (signed.expected_epoch or 0) + 1,
    }[name]
    problem = refusal(replace(signed, **{name: changed}), SECRET, now=signed.issued_at)
    assert problem is not None and problem[0] == "bad_signature"


@pytest.mark.parametrize(
    ("now", "code"),
    [(100.0, None), (400.0, None), (400.001, "expired"), (60.0, "not_yet_valid")],
)
def test_expiry_and_clock_skew_bounds(now: float, code: str | None) -> None:
    """Valid from issue time (minus skew) up to and including expires_at."""
    signed = sign(new_command("bot", "pin", "ann", 100.0, ttl_s=300.0), SECRET)
    problem = refusal(signed, SECRET, now)
    assert (problem[0] if problem else None) == code


def test_verify_raises_command_refused_for_an_unsigned_command() -> None:
    """verify() turns a refusal into the CommandRefused exception, naming the reason."""
    with pytest.raises(CommandRefused, match="unsigned"):
        verify(new_command("bot", "pin", "ann", 0.0), SECRET, now=1.0)


@pytest.mark.parametrize("raw", [b"not json", b'{"op": "pin"}', b"[]"])
def test_malformed_bytes_are_refused(raw: bytes) -> None:
    """Bytes that are not a command raise CommandRefused, not a TypeError."""
    with pytest.raises(CommandRefused, match="malformed"):
        Command.from_bytes(raw)


@pytest.mark.parametrize(("field", "value"), [("op", "delete"), ("percent", 101)])
def test_invalid_fields_are_rejected_when_built(field: str, value: object) -> None:
    """An unknown op or a share above 100% cannot even be constructed."""
    with pytest.raises(ConfigError, match=field):
        Command(**{**new_command("bot", "pin", "ann", 0.0).as_dict(), field: value})


@given(commands)
def test_the_encodings_are_the_bytes_of_the_full_field_dict(command: Command) -> None:
    """canonical() and to_bytes() skip asdict's deep copy but must write the same bytes
    (canonical() leaves out an empty signer, as commands signed before it existed)."""
    signed = sign(command, SECRET)
    full = asdict(signed)
    assert signed.to_bytes() == orjson.dumps(full, option=orjson.OPT_SORT_KEYS)
    del full["signature"], full["signer"]
    assert signed.canonical() == orjson.dumps(full, option=orjson.OPT_SORT_KEYS)
