"""Vectors match the configured dimensions and model; the vector indexes exist."""


def test_vector_dimensions(pgcutover):
    pgcutover.verify("vector_dimensions")


def test_vector_indexes(pgcutover):
    pgcutover.verify("vector_index")
