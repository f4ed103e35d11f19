"""Both sides reachable, server versions, pgvector installed."""


def test_connectivity_and_extension(pgcutover):
    pgcutover.verify("connectivity")
