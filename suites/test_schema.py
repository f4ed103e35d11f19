"""Schema and object parity: every object of every migrated schema, compared in the catalogs;
database- and role-level settings that change the app's results or plans."""


def test_schema_parity(pgcutover):
    pgcutover.verify("schema")


def test_settings_parity(pgcutover):
    pgcutover.verify("settings")
