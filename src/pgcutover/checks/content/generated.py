"""Stored generated columns, compared apart from the rest of a row. pg_dump does not carry
their values: the target's server computes them again on restore, so where they differ the
new server computes the same expression differently (PostgreSQL 18's English stemmer turns
"added" into 'add' where 16 gave 'ad'; a collation or time zone can do the same). The columns
they derive from are compared with the rest; this is a finding about the new server, which
the owner should know (hybrid keyword search changes with it), not lost data."""

from __future__ import annotations

from collections.abc import Iterable

from psycopg import sql

from pgcutover.checks.base import DIFFERS, CheckResult, Pair, finding, guarded, outcome
from pgcutover.checks.content.tables import TablePlan
from pgcutover.db import DataRole, Endpoint, connection

AREA = "parity"
#: Rows and an order-independent sum of the values' md5 (two halves of 60 bits).
DIGEST = (
    "SELECT count(*), count({c}),"
    " coalesce(sum(('x' || substr(md5({c}::text), 1, 15))::bit(60)::bigint), 0),"
    " coalesce(sum(('x' || substr(md5({c}::text), 16, 15))::bit(60)::bigint), 0)"
    " FROM {t}"
)


def _digest(endpoint: Endpoint, role: DataRole, table: TablePlan, column: str) -> tuple:
    query = sql.SQL(DIGEST).format(
        c=sql.Identifier(column), t=sql.Identifier(table.schema, table.name)
    )
    with connection(endpoint, role=role) as conn:
        return tuple(conn.execute(query).fetchone())  # type: ignore[arg-type]


def _column(pair: Pair, table: TablePlan, column: str) -> list[CheckResult]:
    check_id = f"content.generated.{table.qualified}.{column}"
    source = _digest(pair.source, "source", table, column)
    target = _digest(pair.target, "target", table, column)
    name = f"{table.qualified}.{column}"
    if source == target:
        return [
            outcome(
                check_id,
                AREA,
                True,
                f"{name} (generated) holds the same values on both sides",
                actual=source[1],
            )
        ]
    return [
        finding(
            check_id,
            AREA,
            f"{name} is a generated column the target's server computed again on restore, and "
            "its values differ from the source's: the new server evaluates the expression "
            "differently (a text search dictionary, a collation, a time zone); the columns it "
            "derives from are compared in the table's own content check",
            kind=DIFFERS,
            remedy=f"compare a few rows of {name} on both sides; if the app searches it (hybrid "
            "keyword search), expect its results to change after the cutover",
            expected={"rows": source[0], "non_null": source[1]},
            actual={"rows": target[0], "non_null": target[1]},
        )
    ]


def compare(pair: Pair, plans: Iterable[TablePlan]) -> list[CheckResult]:
    """One result per stored generated column both sides have."""
    results: list[CheckResult] = []
    for table in plans:
        for column in table.generated:
            check_id = f"content.generated.{table.qualified}.{column}"
            results += guarded(check_id, AREA, lambda t=table, c=column: _column(pair, t, c), pair)
    return results
