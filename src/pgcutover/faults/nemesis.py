"""What every fault is, Jepsen style: it only injects and heals, and always heals."""

from __future__ import annotations

from typing import Protocol

from pgcutover.faults.history import History


class Fault(Protocol):
    """A fault the scenario runner injects at a phase and heals when the migration ends.

    `heal` must be idempotent and safe to call when `inject` never ran or failed half-way.
    """

    def inject(self, history: History) -> None:
        """Start the fault; record it in `history`."""

    def heal(self, history: History) -> None:
        """Undo the fault; record when."""


class FaultUnavailable(Exception):
    """This machine cannot inject the fault (not root, no mount): the scenario is skipped."""
