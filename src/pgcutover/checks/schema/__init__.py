"""Schema and object parity: a catalog comparison (not a text diff of dumps) of every schema
the source has, minus `settings.ignored_schemas`. Each difference is its own failed result
(area "schema") with the source value, the target value and a remedy; objects that match
give one passing result per object or per table, as evidence.

Each family is a module with `compare(source: Side, target: Side, settings)`; both sides are
read in one read-only repeatable-read transaction each, and a family that crashes reports
`unknown` for itself without hiding the others' results."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from pgcutover.checks.base import CheckResult, Pair, guarded, outcome
from pgcutover.checks.schema import (
    constraints,
    database,
    definitions,
    extensions,
    grants,
    indexes,
    roles,
    security,
    sequences,
    tables,
    triggers,
    types,
)
from pgcutover.checks.schema.common import AREA, Side, snapshot
from pgcutover.config import Settings
from pgcutover.db import DataRole, Endpoint, connection
from pgcutover.inventory import inventory_config

Compare = Callable[[Side, Side, Settings], list[CheckResult]]

#: (family, compare): the order the report lists them in.
FAMILIES: tuple[tuple[str, Compare], ...] = (
    ("database", database.compare),
    ("extension", extensions.compare),
    ("role", roles.compare),
    ("type", types.compare),
    ("table", tables.compare),
    ("constraint", constraints.compare),
    ("index", indexes.compare),
    ("sequence", sequences.compare),
    ("grant", grants.compare),
    ("rls", security.compare),
    ("trigger", triggers.compare),
    ("definition", definitions.compare),
)


def nothing(family: str) -> CheckResult:
    """The evidence when a family finds no object of its kind on either side."""
    return outcome(
        f"schema.{family}", AREA, True, f"no {family} objects on either side: nothing to differ"
    )


def _family(
    family: str, compare: Compare, source: Side, target: Side, settings: Settings
) -> list[CheckResult]:
    """Run one family inside a savepoint per side: a failing query aborts only this family."""
    with source.conn.transaction(), target.conn.transaction():
        found = compare(source, target, settings)
    return found or [nothing(family)]


def _login(endpoint: Endpoint, role: DataRole) -> str:
    with connection(endpoint, role=role) as conn:
        return str(conn.execute("SELECT current_user").fetchone()[0])  # type: ignore[index]


def _compare(pair: Pair, settings: Settings) -> list[CheckResult]:
    schemas = [name for name in pair.inventory.schemas if name not in settings.ignored_schemas]
    ignored = frozenset(
        {
            _login(pair.source, "source"),
            _login(pair.target, "target"),
            *inventory_config(settings).ignore_roles,
        }
    )
    results: list[CheckResult] = []
    with (
        snapshot(pair.source, "source", schemas, ignored) as source,
        snapshot(pair.target, "target", schemas, ignored) as target,
    ):
        for family, compare in FAMILIES:
            run = partial(_family, family, compare, source, target, settings)
            results += guarded(f"schema.{family}", AREA, run, pair)
    return results


def check(pair: Pair, settings: Settings) -> list[CheckResult]:
    """Every family's results; a connection failure is one `unknown` result."""
    return guarded("schema", AREA, lambda: _compare(pair, settings), pair)
