"""Schema and object parity: every object of every migrated schema, compared in the catalogs."""

from pgcutover.checks import schema


def test_schema_parity(pgcutover):
    pgcutover.verify(schema.check)
