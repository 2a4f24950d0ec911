"""When a command was received, and how long a received command may be held.

A command's expiry stops old commands from being replayed; it bounds the time between
issuing a command and its *receipt*, not its execution. A command received in time is
held while Redis is away, however long, and carried out once it is back.

The receipt is what the broker says: the commands topic records the time each message was
appended to it (``message.timestamp.type=LogAppendTime``, set when the worker creates the
topic), a time no producer chooses. It survives a worker restart: a command re-read after a
crash during a long Redis outage keeps the receipt it had. A topic that keeps the
producer's own time (CreateTime, a topic created by hand) gives no such fact, and the time
this process first read the message stands in for it (lost on a restart).

Pure: times in, times and refusals out.

>>> receipt(first_read=500.0, timestamp=12.0, timestamp_type=LOG_APPEND_TIME)
12.0
>>> receipt(first_read=500.0, timestamp=12.0, timestamp_type=CREATE_TIME)
500.0
>>> held_too_long(received_at=0.0, now=MAX_HOLD_S + 1.0)[0]
'expired'
"""

from __future__ import annotations

from rollguard.actions.script import IDEMPOTENCY_TTL_S

# Kafka's record timestamp types (aiokafka's ``ConsumerRecord.timestamp_type``).
CREATE_TIME = 0
LOG_APPEND_TIME = 1
# The topic setting that makes the broker stamp each message with its append time.
RECEIPT_CONFIG = {"message.timestamp.type": "LogAppendTime"}
# A command is held at most as long as spent command ids and idempotency keys are
# remembered, so a held command can never outlive the proof that it already ran.
MAX_HOLD_S = float(IDEMPOTENCY_TTL_S)


def receipt(first_read: float, timestamp: float | None, timestamp_type: int | None) -> float:
    """When a commands-topic message was received: the broker's append time when the
    topic records it (never later than this process's first read of it), else the
    first read."""
    if timestamp_type == LOG_APPEND_TIME and timestamp is not None and timestamp > 0:
        return min(timestamp, first_read)
    return first_read


def held_too_long(received_at: float, now: float) -> tuple[str, str] | None:
    """A refusal (code, message) for a command held longer than :data:`MAX_HOLD_S` since
    its receipt; None while it may still be carried out."""
    held = now - received_at
    if held <= MAX_HOLD_S:
        return None
    return "expired", (
        f"held {held:.0f} s since it was received at {received_at:.3f}: longer than the "
        f"{MAX_HOLD_S:.0f} s spent commands are remembered, so it might have run already")
