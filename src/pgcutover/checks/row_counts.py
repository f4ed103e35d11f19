"""Row counts for every table on both sides: the guide's "verify data integrity" query,
generalised from three tables to every table of the migrated schemas."""

from __future__ import annotations

from psycopg import sql

from pgcutover.catalog import user_tables
from pgcutover.checks.base import CheckResult, Pair, guarded, outcome
from pgcutover.config import Settings
from pgcutover.db import DataRole, Endpoint, connection

AREA = "parity"


def table_counts(endpoint: Endpoint, role: DataRole, ignored: tuple[str, ...]) -> dict[str, int]:
    """Exact count(*) of every user table, read in one repeatable-read snapshot."""
    with connection(endpoint, role=role) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        counts = {}
        for schema, table in user_tables(conn, ignored):
            query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))
            counts[f"{schema}.{table}"] = int(conn.execute(query).fetchone()[0])  # type: ignore[index]
        conn.execute("ROLLBACK")
    return counts


def _compare(pair: Pair, settings: Settings) -> list[CheckResult]:
    source = table_counts(pair.source, "source", settings.ignored_schemas)
    target = table_counts(pair.target, "target", settings.ignored_schemas)
    results = []
    for name in sorted(source.keys() | target.keys()):
        expected, actual = source.get(name), target.get(name)
        if actual is None:
            message, remedy = f"{name} is missing on the target", "rerun the migration"
        elif expected is None:
            message = f"{name} exists only on the target ({actual} rows)"
            remedy = "the target holds a table the source lacks: migrate into an empty database"
        elif expected != actual:
            message = f"{name}: {expected} rows on the source, {actual} on the target"
            remedy = "rows were lost or added: rerun the migration into an empty database"
        else:
            message = f"{name}: {actual} rows on both sides"
            remedy = ""
        results.append(
            outcome(
                f"row_counts.{name}",
                AREA,
                expected == actual,
                message,
                expected=expected,
                actual=actual,
                remedy=remedy,
            )
        )
    return results


def check(pair: Pair, settings: Settings) -> list[CheckResult]:
    """One result per table: equal counts pass."""
    return guarded("row_counts", AREA, lambda: _compare(pair, settings), pair)
