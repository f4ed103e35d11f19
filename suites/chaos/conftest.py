"""Chaos scenarios: faults during the migration, each judged by the existing checks.

They start their own servers and take minutes, so `pytest suites/` leaves them out: the
items here are deselected unless a `-m` expression is given, and then `-m` decides
(`pytest suites/ -m chaos` runs only them, `-m "not chaos"` none of them). Deselection
rather than a skip keeps a sunny-day run's report free of "skipped" rows; no `addopts`
is needed, so a user's own `-m` is never overridden.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgcutover.checks.base import SKIP, UNKNOWN, CheckResult
from pgcutover.faults.nemesis import FaultUnavailable
from pgcutover.faults.scenario import AREA, Lab, Scenario, open_lab, run
from pgcutover.plugin import CHAOS, SESSION_PLUGIN

HERE = Path(__file__).parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "chaos: fault-injection scenarios (run with -m chaos; not part of suites/)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without -m, drop the chaos scenarios from the run (see the module docstring)."""
    if config.option.markexpr:
        return
    chaos = [item for item in items if HERE in item.path.parents]
    if chaos:
        items[:] = [item for item in items if HERE not in item.path.parents]
        config.hook.pytest_deselected(items=chaos)


@pytest.fixture(scope="session")
def chaos_lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    """The scenarios' own PG16 source (seeded small) and PG18 target, started once, in a
    private temporary folder removed at the end."""
    settings = request.config.pluginmanager.get_plugin(SESSION_PLUGIN).settings
    base = Path(tempfile.mkdtemp(prefix="pgcutover-chaos-"))
    base.chmod(0o711)
    try:
        with open_lab(base / "servers", settings) as lab:
            yield lab
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def scenario_runner(request: pytest.FixtureRequest, chaos_lab: Lab):
    """Run a scenario, record it in the sign-off (area chaos), fail the test if the
    property broke; a fault this machine cannot inject is recorded and skipped."""
    session = request.config.pluginmanager.get_plugin(SESSION_PLUGIN)

    def run_and_record(scenario: Scenario) -> None:
        check_id = f"chaos.{scenario.name}"
        try:
            outcome = run(chaos_lab, scenario)
        except FaultUnavailable as reason:
            message = f"{scenario.summary}: not injectable here ({reason})"
            session.record(
                [CheckResult(id=check_id, area=AREA, status=SKIP, message=message)], CHAOS
            )
            pytest.skip(f"{scenario.name}: {reason}")
        except Exception as error:  # the scenario itself broke: a blocking row, not silence
            message = f"{scenario.summary}: the scenario could not run: {error}"
            session.record(
                [CheckResult(id=check_id, area=AREA, status=UNKNOWN, message=message)], CHAOS
            )
            raise
        result = outcome.to_check()
        session.record([result], CHAOS)
        if not outcome.holds:
            pytest.fail(result.message, pytrace=False)

    return run_and_record
