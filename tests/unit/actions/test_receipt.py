"""A command's receipt is what the broker says when the commands topic records its append
time, so a command received in time stays valid across a worker restart; a hold is bounded
by how long spent commands are remembered (pure: no Kafka, no Redis)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollguard.actions.commands import new_command, refusal, sign
from rollguard.actions.receipt import (
    CREATE_TIME,
    LOG_APPEND_TIME,
    MAX_HOLD_S,
    held_too_long,
    receipt,
)
from rollguard.actions.respond import COMMAND_TTL_S

SECRET = b"receipt-secret"
T = 1_800_000_000.0
TIMES = st.floats(min_value=1.0, max_value=4e9, allow_nan=False)


@pytest.mark.parametrize(("timestamp", "timestamp_type", "received"), [
    (T, LOG_APPEND_TIME, T),  # the broker's append time, whenever it is read
    (T, CREATE_TIME, T + 900.0),  # the producer's own time proves nothing: the first read
    (None, LOG_APPEND_TIME, T + 900.0),
    (0.0, LOG_APPEND_TIME, T + 900.0),  # no timestamp at all (-1 ms from old formats)
    (-0.001, LOG_APPEND_TIME, T + 900.0),
    (T + 1000.0, LOG_APPEND_TIME, T + 900.0),  # broker clock ahead: never after the read
    (T, None, T + 900.0),
])
def test_the_receipt_is_the_brokers_append_time_else_the_first_read(
        timestamp: float | None, timestamp_type: int | None, received: float) -> None:
    assert receipt(T + 900.0, timestamp, timestamp_type) == received


@given(first_read=TIMES, timestamp=TIMES, timestamp_type=st.sampled_from([0, 1, None]))
def test_a_receipt_is_never_later_than_the_first_read(
        first_read: float, timestamp: float, timestamp_type: int | None) -> None:
    assert receipt(first_read, timestamp, timestamp_type) <= first_read


@pytest.mark.parametrize(("appended_after_s", "read_after_s", "code"), [
    # appended in time, first read (after a worker restart) long past the expiry: valid
    (10.0, COMMAND_TTL_S + 3600.0, None),
    (COMMAND_TTL_S, 10 * COMMAND_TTL_S, None),
    # appended after its expiry (a replay of an old signed command, a truly late one)
    (COMMAND_TTL_S + 1.0, COMMAND_TTL_S + 2.0, "expired"),
])
def test_expiry_is_judged_at_the_brokers_receipt_across_a_restart(
        appended_after_s: float, read_after_s: float, code: str | None) -> None:
    command = sign(new_command("chat", "rollback", "rule:x", T), SECRET)
    received = receipt(T + read_after_s, T + appended_after_s, LOG_APPEND_TIME)
    problem = refusal(command, SECRET, received) or held_too_long(received, T + read_after_s)
    assert (problem[0] if problem else None) == code


def test_a_forged_command_appended_in_time_is_still_refused() -> None:
    command = sign(new_command("chat", "rollback", "rule:x", T), b"not-the-secret")
    received = receipt(T + 900.0, T + 1.0, LOG_APPEND_TIME)
    assert refusal(command, SECRET, received)[0] == "bad_signature"  # type: ignore[index]


@pytest.mark.parametrize(("held_s", "refused"), [
    (0.0, False), (COMMAND_TTL_S * 100, False), (MAX_HOLD_S, False), (MAX_HOLD_S + 1.0, True),
])
def test_a_command_is_held_no_longer_than_spent_commands_are_remembered(
        held_s: float, refused: bool) -> None:
    assert (held_too_long(T, T + held_s) is not None) == refused
