"""Every check family a full sign-off runs, in one place: the suites run them by name, the
run knows which ones must have reported before it may say GO, and a failed migration (or a
target holding none of the source's tables) turns the families that judge the target into
`skip` "not judged: ..." so the one cause is not buried under dozens of failures."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pgcutover import expectations
from pgcutover.catalog import user_tables
from pgcutover.checks import (
    connectivity,
    content,
    cutover,
    migration,
    platform,
    row_counts,
    schema,
    settings_parity,
    vector_indexes,
    vectors,
)
from pgcutover.checks.base import SKIP, CheckResult, Pair
from pgcutover.checks.search import drift as embedding_drift
from pgcutover.checks.search import filtered, latency, plans, recall, smoke
from pgcutover.config import Settings
from pgcutover.db import Endpoint, connection
from pgcutover.errors import PgcutoverError
from pgcutover.inventory import Inventory
from pgcutover.load import slo
from pgcutover.migrate.runner import MigrationResult

#: Where a check writes a file the sign-off links to: (label, filename) -> path.
Artefact = Callable[[str, str], Path]
DATA_DOCS = "Data expectations (great-expectations Data Docs)"


@dataclass(frozen=True)
class Context:
    """What a family needs: the pair (with the inventory), the settings, what the migration
    did, why the target cannot be judged (None when it can), and where artefacts go."""

    pair: Pair
    settings: Settings
    migration: MigrationResult
    blocked: str | None
    artefact: Artefact


@dataclass(frozen=True)
class Family:
    """One check family: its name (the prefix of its check ids), how it runs, and whether it
    judges the target (then a failed migration makes it wait)."""

    name: str
    area: str
    run: Callable[[Context], list[CheckResult]]
    judges_target: bool = True


def _load(context: Context) -> list[CheckResult]:
    return slo.check(context.pair, context.settings, context.artefact)


def _expectations(context: Context) -> list[CheckResult]:
    docs = context.artefact(DATA_DOCS, "expectations/index.html").parent
    return expectations.check(context.pair, context.settings, docs_dir=docs)


def _pair(
    check: Callable[[Pair, Settings], list[CheckResult]],
) -> Callable[[Context], list[CheckResult]]:
    """A check that needs only the pair and the settings, as a family runs it."""
    return lambda context: check(context.pair, context.settings)


FAMILIES: tuple[Family, ...] = (
    Family("connectivity", "connectivity", _pair(connectivity.check), judges_target=False),
    Family(
        "migration",
        "migration",
        lambda c: migration.check(c.migration, c.blocked),
        judges_target=False,
    ),
    Family("drift", "parity", lambda c: migration.drift(c.migration), judges_target=False),
    # --strategy=logical only (nothing for dump/restore); it reports after a failure too:
    # a replication slot left on the source is a finding then most of all.
    Family(
        "cutover",
        "migration",
        lambda c: cutover.check(c.pair, c.settings, c.migration),
        judges_target=False,
    ),
    Family("row_counts", "parity", _pair(row_counts.check)),
    Family("content", "parity", _pair(content.check)),
    Family("schema", "schema", _pair(schema.check)),
    Family("settings", "settings", _pair(settings_parity.check)),
    Family("platform", "platform", lambda c: platform.check(c.pair, c.settings, c.migration)),
    Family("vector_dimensions", "vectors", _pair(vectors.check)),
    Family("vector_index", "search", _pair(vector_indexes.check)),
    Family("search.plan", "search", _pair(plans.check)),
    Family("search.recall", "search", _pair(recall.check)),
    Family("search.filtered", "search", _pair(filtered.check)),
    Family("search.latency", "search", _pair(latency.check)),
    Family("search.drift", "search", _pair(embedding_drift.check)),
    Family("search.smoke", "search", _pair(smoke.check)),
    Family("load", "load", _load),
    Family("expectations", "expectations", _expectations),
)
NAMES = tuple(family.name for family in FAMILIES)


def blocked_by(migration: MigrationResult, target: Endpoint, inventory: Inventory) -> str | None:
    """Why the target cannot be judged: the migration failed, or the target holds none of
    the source's tables (an empty or wrong target); None when it can be."""
    if migration.performed and not migration.ok:
        return f"the migration failed in phase {migration.failed_phase!r}"
    if not inventory.tables:
        return None
    try:
        with connection(target, role="target") as conn:
            present = {f"{schema}.{table}" for schema, table in user_tables(conn, ())}
    except PgcutoverError as error:
        return f"the target cannot be reached: {error.problem}"
    if not present & {table.qualified for table in inventory.tables}:
        return (
            f"the target {target.label} holds none of the source's {len(inventory.tables)} "
            f"tables (e.g. {inventory.tables[0].qualified})"
        )
    return None


def family(name: str) -> Family:
    """A family by name; an unknown name is a programming error in a suite."""
    for candidate in FAMILIES:
        if candidate.name == name:
            return candidate
    raise KeyError(f"no check family {name!r} (known: {', '.join(NAMES)})")


def run(name: str, context: Context) -> list[CheckResult]:
    """Run one family, or skip it with the cause when the target cannot be judged."""
    chosen = family(name)
    if chosen.judges_target and context.blocked is not None:
        return [
            CheckResult(
                id=chosen.name,
                area=chosen.area,
                status=SKIP,
                message=f"not judged: {context.blocked}",
                remedy="fix that cause first (see the migration checks); the run is NO-GO",
            )
        ]
    return chosen.run(context)


def run_all(context: Context) -> list[CheckResult]:
    """Every family in order (what a full `pytest suites/` records), for callers outside
    pytest: the chaos lab and the project's own tests."""
    results: list[CheckResult] = []
    for chosen in FAMILIES:
        results += run(chosen.name, context)
    return results
