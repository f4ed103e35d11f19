"""The cutover gap: rows the source changed after the migration's snapshot (zero is noted)."""

from pgcutover.checks import drift


def test_source_drift_since_snapshot(pgcutover):
    pgcutover.verify(lambda pair, settings: drift.from_migration(pgcutover.environment.migration))
