"""Vectors match the configured dimensions and model; the vector indexes exist."""

from pgcutover.checks import vector_indexes, vectors


def test_vector_dimensions(pgcutover):
    pgcutover.verify(vectors.check)


def test_vector_indexes(pgcutover):
    pgcutover.verify(vector_indexes.check)
