"""Data expectations (fixtures/expectations/*.toml) hold on the target; Data Docs beside the
sign-off."""

from pgcutover import expectations

DATA_DOCS = "Data expectations (great-expectations Data Docs)"


def test_data_expectations(pgcutover):
    docs = pgcutover.artefact(DATA_DOCS, "expectations/index.html").parent
    pgcutover.verify(lambda pair, settings: expectations.check(pair, settings, docs_dir=docs))
