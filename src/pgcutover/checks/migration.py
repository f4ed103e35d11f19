"""The migration itself: it completed, with no error ignored."""

from __future__ import annotations

from pgcutover.checks.base import SKIP, CheckResult, outcome
from pgcutover.migrate.runner import MigrationResult

AREA = "migration"


def check(migration: MigrationResult) -> list[CheckResult]:
    """Pass when every phase succeeded; skip when the run only verifies."""
    if not migration.performed:
        return [
            CheckResult(
                id="migration.completed",
                area=AREA,
                status=SKIP,
                message="; ".join(migration.notes) or "not performed",
            )
        ]
    phases = {phase.name: phase.seconds for phase in migration.phases}
    if migration.ok:
        message = f"{migration.strategy} migration completed in {sum(phases.values()):.1f} s"
    else:
        message = f"failed in phase {migration.failed_phase}: {migration.error}"
    results = [
        outcome(
            "migration.completed",
            AREA,
            migration.ok,
            message,
            actual=phases,
            remedy=migration.remedy or "",
        )
    ]
    return results
