"""Operators' own keys: derived per name and generation, signing only for their owner, kept
in files only their owner reads; and the policy's rules of who may approve."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollguard.actions.commands import Command, new_command, refusal, sign, sign_as
from rollguard.actions.operators import OperatorKey, Signatures, derive_key
from rollguard.base.errors import ConfigError
from rollguard.detectors.approvers import (
    ApprovalRules,
    Approved,
    NotAllowed,
    Waiting,
    approval_rules,
    judge,
)
from rollguard.detectors.policy import default_policy, policy_from_dict
from rollguard.ops.operator_keys import (
    KEY_ENV,
    KEY_FILE_ENV,
    KEYS_DIR_ENV,
    operator_key,
    read_key_file,
    write_key,
)

SECRET = b"deployment-secret"
names = st.from_regex(r"[a-z][a-z0-9._-]{0,15}", fullmatch=True)


@given(names, names, st.integers(1, 5), st.integers(1, 5))
def test_each_operator_and_generation_has_its_own_key(a: str, b: str, ga: int, gb: int) -> None:
    """No operator's key is another's, and a rotated key is a different key."""
    same = (a, ga) == (b, gb)
    assert (derive_key(SECRET, a, ga) == derive_key(SECRET, b, gb)) == same


@given(names, names)
def test_a_command_signed_with_one_operators_key_does_not_verify_as_anothers(
        signer: str, other: str) -> None:
    command = sign_as(new_command("chat", "pin", signer, 10.0), signer,
                      derive_key(SECRET, signer, 1))
    assert refusal(command, derive_key(SECRET, signer, 1), 15.0) is None
    if other != signer:
        assert refusal(command, derive_key(SECRET, other, 1), 15.0)[0] == "bad_signature"  # type: ignore[index]
    assert refusal(command, SECRET, 15.0)[0] == "bad_signature"  # type: ignore[index]


def test_a_key_signs_only_for_its_owner() -> None:
    with pytest.raises(ConfigError, match="cannot be signed with 'bob'"):
        sign_as(new_command("chat", "pin", "ana", 10.0), "bob", b"k" * 32)


def test_a_command_signed_before_operators_had_keys_still_verifies() -> None:
    """The canonical bytes leave out an empty signer: an older command's signature holds."""
    command = sign(new_command("chat", "pin", "ann", 10.0), SECRET)
    older = Command.from_bytes(command.to_bytes().replace(b',"signer":""', b""))
    assert refusal(older, SECRET, 15.0) is None


@given(names, st.integers(1, 1000), st.binary(min_size=32, max_size=32))
def test_a_key_token_round_trips_and_its_repr_hides_the_key(
        name: str, generation: int, key: bytes) -> None:
    made = OperatorKey(name, generation, key)
    assert OperatorKey.parse(made.token()) == made
    assert key.hex() not in repr(made)


@pytest.mark.parametrize("text", ["", "rgop1:ana:1:zz", "rgop1:ana:0:" + "00" * 32,
                                  "other:ana:1:" + "00" * 32, "rgop1:a b:1:" + "00" * 32])
def test_a_malformed_key_is_refused_without_echoing_it(text: str) -> None:
    with pytest.raises(ConfigError, match="not an operator key") as caught:
        OperatorKey.parse(text, "ROLLGUARD_OPERATOR_KEY")
    assert "00" * 32 not in str(caught.value)


class Registry:
    """Who is registered, at which generation (the real registry is tested on Redis)."""

    def __init__(self, generations: dict[str, int]) -> None:
        self.generations = generations

    async def generation(self, name: str) -> int | None:
        return self.generations.get(name)


@pytest.mark.parametrize(("signer", "issued_by", "generation", "code"), [
    ("ana", "ana", 1, None),
    ("ana", "ana", 2, "bad_signature"),  # rotated: the old key is void
    ("ana", "bob", 1, "signer_mismatch"),
    ("eve", "eve", None, "unknown_operator"),
], ids=["registered", "rotated", "claims-another", "unregistered"])
async def test_the_worker_checks_an_operators_signature_against_the_registry(
        signer: str, issued_by: str, generation: int | None, code: str | None) -> None:
    command = sign_as(new_command("chat", "pin", signer, 10.0), signer,
                      derive_key(SECRET, signer, 1))
    command = Command(**{**command.as_dict(), "issued_by": issued_by})
    registered = {} if generation is None else {signer: generation}
    signatures = Signatures(SECRET, Registry(registered))  # type: ignore[arg-type]
    problem = await signatures.refusal(command, 15.0)
    assert (problem[0] if problem else None) == code


async def test_a_cli_with_one_operators_key_verifies_no_other_operator() -> None:
    """Without the deployment secret, no operator's key can be made."""
    ana = OperatorKey("ana", 1, derive_key(SECRET, "ana", 1))
    bob = sign_as(new_command("chat", "pin", "bob", 10.0), "bob", derive_key(SECRET, "bob", 1))
    signatures = Signatures(os.urandom(32), Registry({"ana": 1, "bob": 1}),  # type: ignore[arg-type]
                            operator=ana)
    assert await signatures.refusal(bob, 15.0) is not None
    own = sign_as(new_command("chat", "pin", "ana", 10.0), "ana", ana.key)
    assert await signatures.refusal(own, 15.0) is None


# -- key files -----------------------------------------------------------------------------


def test_a_written_key_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    key = OperatorKey("ana", 1, derive_key(SECRET, "ana", 1))
    (tmp_path / "ana.key").write_text("old")
    os.chmod(tmp_path / "ana.key", 0o644)
    path = write_key(tmp_path, key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_key_file(path) == key


def test_a_key_file_open_to_others_is_refused(tmp_path: Path) -> None:
    key = OperatorKey("ana", 1, derive_key(SECRET, "ana", 1))
    path = write_key(tmp_path, key)
    os.chmod(path, 0o640)
    with pytest.raises(ConfigError, match=r"open to other users .*chmod 600"):
        read_key_file(path)


def test_the_key_comes_from_the_variable_then_the_file_then_the_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = {n: OperatorKey(n, 1, derive_key(SECRET, n, 1)) for n in ("ana", "bob", "cy")}
    for key in keys.values():
        write_key(tmp_path, key)
    for name in (KEY_ENV, KEY_FILE_ENV, KEYS_DIR_ENV):
        monkeypatch.delenv(name, raising=False)
    assert operator_key("cy") is None
    monkeypatch.setenv(KEYS_DIR_ENV, str(tmp_path))
    assert operator_key("cy") == keys["cy"]
    monkeypatch.setenv(KEY_FILE_ENV, str(tmp_path / "bob.key"))
    assert operator_key("cy") == keys["bob"]
    monkeypatch.setenv(KEY_ENV, keys["ana"].token())
    assert operator_key("cy") == keys["ana"]


# -- who may approve -----------------------------------------------------------------------


@given(st.lists(names, min_size=1, max_size=8), st.lists(names, max_size=8),
       st.booleans(), st.booleans(), st.integers(1, 3))
def test_a_rollback_runs_only_with_enough_different_allowed_approvers(
        allowed: list[str], attempts: list[str], pinned: bool, full: bool, count: int) -> None:
    """However people try, approval by approval: each counted approver is allowed and
    counted once, and the rollback runs exactly when enough of them approved."""
    rules = ApprovalRules(tuple(allowed), {}, count)
    needed = count if pinned and full else 1
    earlier: tuple[str, ...] = ()
    for who in attempts:
        verdict = judge(rules, "quality", who, earlier, pinned, full)
        if isinstance(verdict, NotAllowed):
            assert who not in allowed or who in earlier
            continue
        assert who in allowed and who not in earlier
        earlier = verdict.approvers
        assert len(set(earlier)) == len(earlier)
        if isinstance(verdict, Approved):
            assert len(earlier) == needed
            break
        assert isinstance(verdict, Waiting) and len(earlier) < needed


def test_a_rules_own_approvers_replace_the_general_list() -> None:
    rules = approval_rules({"approvers": ["ana"], "rules": {"latency_ms": ["cy"]},
                            "pinned_full_rollback": 1})
    assert isinstance(judge(rules, "latency_ms", "ana", (), False, True), NotAllowed)
    assert isinstance(judge(rules, "latency_ms", "cy", (), False, True), Approved)
    assert isinstance(judge(rules, "quality", "ana", (), False, True), Approved)


def test_without_a_list_any_registered_operator_approves() -> None:
    assert default_policy().approvals == ApprovalRules()
    assert isinstance(judge(ApprovalRules(), "quality", "zed", (), False, True), Approved)


@pytest.mark.parametrize(("section", "message"), [
    ("nope", "approvals: must be a table"),
    ({"approvers": "ana"}, "approvals.approvers: must be a list of operator names"),
    ({"approvers": ["ana", ""]}, "approvals.approvers: must be a list"),
    ({"rules": ["ana"]}, "approvals.rules: must map"),
    ({"pinned_full_rollback": 9}, "must be an integer in 1..5, got 9"),
    ({"approvers": ["ana"]}, "approvals.approvers: names 1, fewer than pinned_full_rollback"),
    ({"approver": ["ana"]}, "approvals.approver: unknown field"),
])
def test_a_mistaken_approvals_section_is_refused_naming_the_field(
        section: Any, message: str) -> None:
    raw = {"metrics": {"error": {"statistic": "rate", "tolerance": 0.01}}, "approvals": section}
    with pytest.raises(ConfigError, match=message):
        policy_from_dict(raw)
