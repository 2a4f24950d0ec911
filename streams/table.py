"""The state table: a Faust table that can also be written outside stream iteration.

Faust sends a table write to the changelog partition of the event being processed, and
refuses writes from anywhere else (a timer, say). Checkpoints of an idle partition are
written from a timer, so this table takes the partition explicitly there. The partition is
the same one a write from that partition's events would use, so recovery and rebalancing
are unchanged.
"""

from __future__ import annotations

from typing import Any

import faust


class StateTable(faust.Table):
    """``write(partition, key, value)`` is ``table[key] = value`` for that partition."""

    _partition: int | None = None

    def write(self, partition: int, key: bytes, value: bytes) -> None:
        self._partition = partition
        try:
            self[key] = value
        finally:
            self._partition = None

    def partition_for_key(self, key: Any) -> int | None:
        if self._partition is not None:
            return self._partition
        return super().partition_for_key(key)
