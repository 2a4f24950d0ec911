"""The Kafka wire format accepts one event or a batch, and names what it cannot read."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollguard.actions.approvals import approval, check_approval, read_approval
from rollguard.base.errors import CommandRefused
from rollguard.streams import messages
from rollguard.streams.wire import encode_batch, split_message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"", [(None, "empty_message")]),
        (None, [(None, "empty_message")]),
        (b"[]", [(None, "empty_batch")]),
        (b"{not json", [(None, "not_json")]),
        (b'{"a": 1}', [({"a": 1}, None)]),
        (b'[{"a": 1}, "x"]', [({"a": 1}, None), ("x", None)]),
        (b"42", [(42, None)]),
    ],
)
def test_split_message_cases(value: bytes | None, expected: list[object]) -> None:
    """Each message decodes to its events, or to one reason it could not be read."""
    assert split_message(value) == expected


SMALL_EVENTS = st.dictionaries(st.text(max_size=5), st.integers(-(2**53), 2**53), max_size=3)


@given(st.lists(SMALL_EVENTS, min_size=1, max_size=20))
def test_batch_round_trips(events: list[dict[str, int]]) -> None:
    """A batch encoded by the emitter decodes to the same events in the same order."""
    assert [e for e, _ in split_message(encode_batch(events))] == events


def test_dead_letter_keeps_the_original_and_the_reason() -> None:
    """A dead letter carries the reason code, the detail and the original text."""
    letter = orjson.loads(messages.dead_letter("not_json", "line 1", b"{oops"))
    assert letter == {"reason": "not_json", "detail": "line 1", "value": "{oops"}


KEY = b"k" * 32


def check(message: dict[str, object], now: float) -> None:
    check_approval(read_approval(message), KEY, now)


@pytest.mark.parametrize(
    ("mutate", "now", "match"),
    [
        (lambda m: m, 100.0 + 301, "expired"),
        (lambda m: {**m, "by": "mallory"}, 101.0, "bad signature"),
        (lambda m: {**m, "command_id": "other"}, 101.0, "bad signature"),
        (lambda m: {**m, "service": "other"}, 101.0, "bad signature"),
        (lambda m: {**m, "approval_id": "other"}, 101.0, "bad signature"),
        (lambda m: {k: v for k, v in m.items() if k != "signature"}, 101.0, "malformed"),
        (lambda m: {k: v for k, v in m.items() if k != "v"}, 101.0, "own key"),
    ],
)
def test_approvals_that_are_forged_or_stale_are_refused(mutate, now: float, match: str) -> None:
    """An approval must be signed with its approver's key, unchanged and recent; one of the
    older kind (signed with the deployment secret, no ``v``) is refused as such."""
    message = mutate(messages.loads(approval("chat", "cmd-1", "ana", KEY, 100.0)))
    with pytest.raises(CommandRefused, match=match):
        check(message, now)


def test_approval_without_an_approver_is_refused() -> None:
    """Somebody has to be named as the approver."""
    message = messages.loads(approval("chat", "cmd-1", " ", KEY, 100.0))
    with pytest.raises(CommandRefused, match="no approver"):
        check(message, 101.0)
