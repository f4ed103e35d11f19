"""The migration ran as the guide does it, with no error ignored."""


def test_migration_completed(pgcutover):
    pgcutover.verify("migration")
