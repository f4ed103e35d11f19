"""The migration itself: it completed, with no error ignored, into a target that now holds the
source's tables; and the cutover gap it measured (rows the source changed after its snapshot).
When the target cannot be judged, this family reports the one cause."""

from __future__ import annotations

from pgcutover.checks import drift as source_drift
from pgcutover.checks.base import FAIL, SKIP, CheckResult, outcome
from pgcutover.migrate.runner import MigrationResult

AREA = "migration"


def check(migration: MigrationResult, blocked: str | None = None) -> list[CheckResult]:
    """Pass when every phase succeeded; when the run only verifies, a skip, unless the target
    holds nothing to verify (`blocked`), which is the run's one cause."""
    if not migration.performed:
        if blocked is not None:
            return [
                CheckResult(
                    id="migration.target",
                    area=AREA,
                    status=FAIL,
                    message=blocked,
                    remedy="migrate into the target first (--migrate --allow-destructive), or "
                    "point --target at the database that holds the migrated copy",
                )
            ]
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
    return [
        outcome(
            "migration.completed",
            AREA,
            migration.ok,
            message,
            actual=phases,
            remedy=migration.remedy or "",
        )
    ]


def drift(migration: MigrationResult) -> list[CheckResult]:
    """The drift the migration measured; a skip when there was no snapshot to measure from
    (no migration in this run, or one that failed: that failure is reported once, above)."""
    if not migration.performed or not migration.ok:
        reason = (
            "no migration in this run, so no snapshot to measure drift from"
            if not migration.performed
            else f"not judged: the migration failed in phase {migration.failed_phase}"
        )
        return [CheckResult(id="drift.source", area=source_drift.AREA, status=SKIP, message=reason)]
    return source_drift.report(migration.drift, migration.snapshot)
