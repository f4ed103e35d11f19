"""Data expectations: suites kept as TOML in fixtures/expectations/, run with
great-expectations on the target and, for comparison, on the source.

Each expectation becomes one check, `expectations.<suite>.<schema.table>.<name>`: it passes
when it holds on the target; the source's result tells whether a failure is new (the
migration changed the data) or was already there.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from pgcutover.checks.base import (
    SHARED,
    SKIP,
    UNKNOWN,
    CheckResult,
    Pair,
    finding,
    guarded,
    outcome,
)
from pgcutover.config import Settings
from pgcutover.expectations.suites import Expectation, load_suites, suite_files

if TYPE_CHECKING:
    from pgcutover.expectations.runner import Observation

AREA = "expectations"


def _found(observation: Observation) -> str:
    """'2 of 1500 unexpected' or 'holds', for messages."""
    if observation.error:
        return "could not be evaluated"
    if observation.success and not observation.unexpected:
        return "holds"
    total = f" of {observation.total}" if observation.total else ""
    return f"{observation.unexpected}{total} unexpected"


def _judge(
    expectation: Expectation, source: Observation | None, target: Observation | None
) -> CheckResult:
    """One check from the two sides' observations (None: the table is missing there)."""
    check_id, table = expectation.check_id, expectation.qualified_table
    evidence = {
        "type": expectation.type,
        "source": source.to_json() if source is not None else None,
        "target": target.to_json() if target is not None else None,
    }
    if target is None:
        return outcome(
            check_id,
            AREA,
            False,
            f"{table} is missing on the target",
            remedy="rerun the migration; the table exists on the source",
            details=evidence,
        )
    if target.error and source is not None and source.error and "does not exist" in target.error:
        return CheckResult(
            check_id,
            AREA,
            SKIP,
            f"{table}.{expectation.name} does not apply to this database (on both sides: "
            f"{target.error})",
            remedy="adapt or drop the expectation in its suite file",
            details=evidence,
        )
    if target.error:
        return CheckResult(
            check_id,
            AREA,
            UNKNOWN,
            f"{table}.{expectation.name} could not be evaluated: {target.error}",
            remedy="fix the expectation in its suite file, or the table it names",
            threshold=expectation.kwargs,
            details=evidence,
        )
    on_source = "table missing" if source is None else _found(source)
    message = f"{table}.{expectation.name}: {_found(target)} on the target (source: {on_source})"
    if target.sample:
        message += f"; e.g. {', '.join(target.sample)}"
    already = source is not None and not source.success
    origin = (
        "the source has the same problem: fix the data there before the cutover, or accept it "
        "by changing the suite"
        if already
        else "the source passes: the migration changed the data"
    )
    remedy = f"{expectation.remedy + '; ' if expectation.remedy else ''}{origin}"
    if already and not target.success and target.unexpected <= source.unexpected:  # type: ignore[union-attr]
        return finding(
            check_id,
            AREA,
            message + " (the source has it too: not a migration fault)",
            kind=SHARED,
            remedy=remedy,
            expected=0,
            actual=target.unexpected,
            threshold=expectation.kwargs,
            details=evidence,
        )
    return outcome(
        check_id,
        AREA,
        target.success,
        message,
        remedy=remedy,
        expected=0,
        actual=target.unexpected,
        threshold=expectation.kwargs,
        details=evidence,
    )


def _check(pair: Pair, settings: Settings, docs_dir: Path | None) -> list[CheckResult]:
    # great-expectations takes seconds to import: only runs that check expectations pay.
    with warnings.catch_warnings():
        # it imports the deprecated sre_constants and sre_parse modules
        warnings.simplefilter("ignore", DeprecationWarning)
        from pgcutover.expectations import runner

    expectations = load_suites(suite_files(settings), settings)
    found = runner.run({"source": pair.source, "target": pair.target}, expectations, docs_dir)
    results = []
    absent: dict[str, list[str]] = {}
    for expectation in expectations:
        source = found["source"].get(expectation.check_id)
        target = found["target"].get(expectation.check_id)
        if source is None and target is None:
            absent.setdefault(expectation.suite, []).append(expectation.qualified_table)
            continue
        results.append(_judge(expectation, source, target))
    for suite, tables in absent.items():
        names = sorted(set(tables))
        results.append(
            CheckResult(
                f"expectations.{suite}",
                AREA,
                SKIP,
                f"{len(tables)} expectations of suite {suite!r} name tables neither side has "
                f"({', '.join(names[:6])}{', ...' if len(names) > 6 else ''})",
                details={"tables": names},
            )
        )
    return results


def check(pair: Pair, settings: Settings, docs_dir: Path | None = None) -> list[CheckResult]:
    """One result per expectation of every suite; Data Docs go to docs_dir when given."""
    return guarded("expectations", AREA, lambda: _check(pair, settings, docs_dir), pair)
