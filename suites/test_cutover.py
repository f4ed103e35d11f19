"""The zero-downtime cutover (--strategy=logical): replication lag and the initial copy, the
switchover's write pause against the dump/restore window, the way back, and nothing left on
the source (the dump/restore strategies report nothing here)."""


def test_logical_cutover(pgcutover):
    pgcutover.verify("cutover")
