"""The run as data: everything the sign-off shows, in the signoff.json contract (DESIGN.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pgcutover.checks.base import FAIL, UNKNOWN, CheckResult

Verdict = Literal["GO", "NO-GO"]
AREA_ORDER = (
    "environment",
    "connectivity",
    "migration",
    "parity",
    "schema",
    "settings",
    "platform",
    "vectors",
    "search",
    "load",
    "chaos",
    "expectations",
)
STATUS_ORDER = {"fail": 0, "unknown": 1, "pass": 2, "skip": 3}


@dataclass
class RunReport:
    """One run: environments, migration, checks and artefacts."""

    run_id: str
    started_at: str
    finished_at: str
    source: dict[str, Any]
    target: dict[str, Any]
    migration: dict[str, Any]
    checks: list[CheckResult]
    seed: dict[str, Any] | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    artefacts: dict[str, str] = field(default_factory=dict)
    signoff_by: str = ""
    since_last_run: dict[str, Any] | None = None
    #: What the source holds, as every check read it (inventory.Inventory.to_json()).
    inventory: dict[str, Any] | None = None
    #: Whether the two sides share a server, and the evidence (identity.Relation).
    relation: dict[str, Any] | None = None
    #: What this run did, in words (a rehearsal, a verification, a scratch rehearsal, ...).
    mode: str = ""
    #: The families this run owed, those missing, and whether it was interrupted.
    completeness: dict[str, Any] = field(
        default_factory=lambda: {"required": [], "missing": [], "interrupted": False}
    )

    @property
    def complete(self) -> bool:
        """Every owed family reported and nothing interrupted the run."""
        return not self.completeness["missing"] and not self.completeness["interrupted"]

    @property
    def verdict(self) -> Verdict:
        """GO only when the run is complete, checks ran, and none failed or is unknown."""
        if not self.checks or not self.complete:
            return "NO-GO"
        blocked = any(check.status in (FAIL, UNKNOWN) for check in self.checks)
        return "NO-GO" if blocked else "GO"

    @property
    def duration_seconds(self) -> float | None:
        """Wall-clock length of the run (None if a timestamp is unreadable)."""
        try:
            started = datetime.fromisoformat(self.started_at)
            finished = datetime.fromisoformat(self.finished_at)
        except ValueError:
            return None
        return (finished - started).total_seconds()

    def counts(self) -> dict[str, int]:
        """How many checks ended in each status."""
        totals = {"pass": 0, "fail": 0, "unknown": 0, "skip": 0}
        for check in self.checks:
            totals[check.status] += 1
        return totals

    def ordered_checks(self) -> list[CheckResult]:
        """Failures first, then by area and id."""

        def area_rank(area: str) -> int:
            return AREA_ORDER.index(area) if area in AREA_ORDER else len(AREA_ORDER)

        return sorted(self.checks, key=lambda c: (STATUS_ORDER[c.status], area_rank(c.area), c.id))

    def by_area(self) -> dict[str, list[CheckResult]]:
        """Checks grouped by area: areas holding a failure first, failures first inside."""
        groups: dict[str, list[CheckResult]] = {}
        for check in self.ordered_checks():
            groups.setdefault(check.area, []).append(check)
        return groups

    def to_json(self) -> dict[str, Any]:
        """The signoff.json document."""
        return {
            "run_id": self.run_id,
            "verdict": self.verdict,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_seconds": self.duration_seconds,
            "signoff_by": self.signoff_by,
            "source": self.source,
            "target": self.target,
            "migration": self.migration,
            "seed": self.seed,
            "settings": self.settings,
            "summary": self.counts(),
            "mode": self.mode,
            "completeness": self.completeness,
            "relation": self.relation,
            "inventory": self.inventory,
            "checks": [check.to_json() for check in self.ordered_checks()],
            "artefacts": self.artefacts,
            "since_last_run": self.since_last_run,
        }
