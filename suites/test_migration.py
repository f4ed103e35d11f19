"""The migration ran as the guide does it, with no error ignored."""

from pgcutover.checks import migration


def test_migration_completed(pgcutover):
    pgcutover.verify(lambda pair, settings: migration.check(pgcutover.environment.migration))
