"""Data expectations (fixtures/expectations/*.toml) hold on the target; Data Docs beside the
sign-off."""


def test_data_expectations(pgcutover):
    pgcutover.verify("expectations")
