"""Row counts for every table on both sides: the guide's "verify data integrity" query,
generalised from three tables to every table of the migrated schemas. A table whose rows
row-level security hides from the reading role is `unknown`, never a difference."""

from __future__ import annotations

import psycopg
from psycopg import sql

from pgcutover.catalog import user_tables
from pgcutover.checks.base import (
    RLS_HIDES_ROWS,
    RLS_REMEDY,
    UNKNOWN,
    CheckResult,
    Pair,
    guarded,
    outcome,
)
from pgcutover.config import Settings
from pgcutover.db import DataRole, Endpoint, connection

AREA = "parity"


def table_counts(
    endpoint: Endpoint, role: DataRole, ignored: tuple[str, ...]
) -> dict[str, int | str]:
    """Exact count(*) of every user table, read in one repeatable-read snapshot; a table the
    role cannot read in full maps to the reason instead of a number."""
    with connection(endpoint, role=role) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        counts: dict[str, int | str] = {}
        for schema, table in user_tables(conn, ignored):
            query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))
            try:
                with conn.transaction():
                    counts[f"{schema}.{table}"] = int(conn.execute(query).fetchone()[0])  # type: ignore[index]
            except psycopg.errors.InsufficientPrivilege as error:
                counts[f"{schema}.{table}"] = endpoint.redact(str(error).strip())
        conn.execute("ROLLBACK")
    return counts


def _unreadable(name: str, side: str, reason: str) -> CheckResult:
    hidden = RLS_HIDES_ROWS in reason
    return CheckResult(
        id=f"row_counts.{name}",
        area=AREA,
        status=UNKNOWN,
        message=f"{name} cannot be counted on the {side}: "
        + ("row-level security hides rows from the reading role" if hidden else reason),
        remedy=RLS_REMEDY
        if hidden
        else f"GRANT SELECT ON {name} (or pg_read_all_data) to the role pgcutover reads with",
        details={"error": reason},
    )


def _compare(pair: Pair, settings: Settings) -> list[CheckResult]:
    source = table_counts(pair.source, "source", settings.ignored_schemas)
    target = table_counts(pair.target, "target", settings.ignored_schemas)
    results = []
    for name in sorted(source.keys() | target.keys()):
        expected, actual = source.get(name), target.get(name)
        if isinstance(expected, str) or isinstance(actual, str):
            side, reason = ("source", expected) if isinstance(expected, str) else ("target", actual)
            results.append(_unreadable(name, side, str(reason)))
            continue
        if actual is None:
            message = f"{name} is missing on the target"
            remedy = "migrate the table (its schema and rows) to the target"
        elif expected is None:
            message = f"{name} exists only on the target ({actual} rows)"
            remedy = "the target holds a table the source lacks: migrate into an empty database"
        elif expected != actual:
            message = f"{name}: {expected} rows on the source, {actual} on the target"
            remedy = (
                "rows were lost or added: see content.<table> for the keys, and migrate the "
                "table again into an empty database"
            )
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
