"""Both sides reachable, server versions, pgvector installed."""

from pgcutover.checks import connectivity


def test_connectivity_and_extension(pgcutover):
    pgcutover.verify(connectivity.check)
