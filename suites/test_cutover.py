"""The zero-downtime cutover (--strategy=logical): replication lag and the initial copy, the
switchover's write pause against the dump/restore window, the way back, and nothing left on
the source."""

import pytest

from pgcutover.checks import cutover


def test_logical_cutover(pgcutover):
    if pgcutover.settings.strategy != "logical":
        pytest.skip("only for --strategy=logical")
    migration = pgcutover.environment.migration
    pgcutover.verify(lambda pair, settings: cutover.check(pair, settings, migration))
