"""A command whose signature and expiry were checked once: what the pointer store applies."""

from __future__ import annotations

from dataclasses import dataclass

from rollguard.actions.commands import Command


@dataclass(frozen=True)
class Admitted:
    """``command``, signed and current as of ``received_at`` (None: when it was admitted).

    Made only by :meth:`rollguard.actions.pointer.PointerStore.admit`, the one place a
    command's signature and expiry are checked; :meth:`~rollguard.actions.pointer.
    PointerStore.apply` plans and applies it without checking them again.
    """

    command: Command
    received_at: float | None = None
