"""The cutover gap: rows the source changed after the migration's snapshot (zero is noted)."""


def test_source_drift_since_snapshot(pgcutover):
    pgcutover.verify("drift")
