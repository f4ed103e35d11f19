"""Nothing lost: the guide's integrity query for every table."""


def test_row_counts(pgcutover):
    pgcutover.verify("row_counts")
