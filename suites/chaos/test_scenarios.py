"""Every fault of the catalogue, one scenario each: NO-GO naming what broke, or GO with
parity checked as of the snapshot; a rerun after the heal converges to GO; the source is
never harmed."""

import pytest

from pgcutover.faults.catalogue import SCENARIOS

pytestmark = pytest.mark.chaos


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario(scenario, scenario_runner):
    scenario_runner(scenario)
