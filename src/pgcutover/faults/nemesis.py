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


class Together:
    """Several faults as one: injected in order, all healed (in reverse) even if one heal
    fails; the first heal error is raised after the others ran."""

    def __init__(self, *faults: Fault) -> None:
        self.faults = faults

    def inject(self, history: History) -> None:
        for fault in self.faults:
            fault.inject(history)

    def heal(self, history: History) -> None:
        errors = []
        for fault in reversed(self.faults):
            try:
                fault.heal(history)
            except Exception as error:  # keep healing the others, then report
                errors.append(error)
        if errors:
            raise errors[0]
