"""Nothing lost: the guide's integrity query for every table."""

from pgcutover.checks import row_counts


def test_row_counts(pgcutover):
    pgcutover.verify(row_counts.check)
