"""Nothing changed: every row of every table, source against target, differing keys named."""

from pgcutover.checks import content


def test_content(pgcutover):
    pgcutover.verify(content.check)
