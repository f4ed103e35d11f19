"""Nothing changed: every row of every table, source against target, differing keys named."""


def test_content(pgcutover):
    pgcutover.verify("content")
