"""The target holds under the app's query load: error rate, p95/p99 per shape, throughput,
measured with locust against both sides (fixtures/load.toml)."""

import pytest

from pgcutover.load.config import load_config


def test_load_service_levels(pgcutover):
    pgcutover.verify("load")


def test_load_during_dump(pgcutover):
    from pgcutover.load import during_dump

    if not load_config(pgcutover.settings, pgcutover.environment.inventory).during_dump.enabled:
        pytest.skip("opt-in: set [load.during_dump] enabled = true in targets.toml")
    pgcutover.verify_extra(
        lambda pair, settings: during_dump.check(pair, settings, pgcutover.artefact)
    )
