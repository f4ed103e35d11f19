"""The target holds under the app's query load: error rate, p95/p99 per shape, throughput,
measured with locust against both sides (fixtures/load.toml)."""

import pytest

from pgcutover.load import during_dump, slo
from pgcutover.load.config import load_config


def test_load_service_levels(pgcutover):
    pgcutover.verify(lambda pair, settings: slo.check(pair, settings, pgcutover.artefact))


def test_load_during_dump(pgcutover):
    if not load_config(pgcutover.settings).during_dump.enabled:
        pytest.skip("opt-in: set [load.during_dump] enabled = true in targets.toml")
    pgcutover.verify(lambda pair, settings: during_dump.check(pair, settings, pgcutover.artefact))
