"""Row hashes computed by PostgreSQL itself, for bisect mode and for tables without a key.

A row's hash is md5 over `record_send(ROW(...))`: the row's binary form with every column's
type, length (-1 for NULL) and exact bytes, so NULL differs from any value and a vector's
floats are hashed bit for bit, in order. Columns are passed so that the bytes are the same on
two servers: core types as they are, domains as their base type, pgvector types through their
binary send function (the same bytes binary COPY sends), and any other type as text.

Why this is strong enough: md5 is broken against someone crafting collisions, not against
the chance that a changed row keeps its hash (2**-128); a migration does not craft rows. A
range is summarised by its row count and the sums of the two 64-bit halves of its rows'
hashes, summed exactly (numeric, no overflow): a changed, missing or extra row shifts each sum
by an effectively random 64-bit amount, so a range's summary stays the same by accident with
probability about 2**-128 -- unlike `sum(hashtext(row::text))`, a 32-bit hash per row whose
collisions are expected among a million rows. Sums do not depend on row order, which makes
the same summary the multiset hash of a table without a key.
"""

from __future__ import annotations

from decimal import Decimal

import psycopg
from psycopg import sql

from pgcutover.checks.content.segments import Key, Segment, key_list, key_text, predicate
from pgcutover.checks.content.tables import DOMAIN, TEXT, VECTOR, TablePlan

#: (rows, sum of the hashes' first 64 bits, sum of their last 64 bits)
Summary = tuple[int, Decimal, Decimal]


def _column(plan: TablePlan, side: str, index: int) -> sql.Composable:
    planned = plan.columns[index]
    column = getattr(planned, side)
    name = sql.Identifier(planned.name)
    if planned.as_text or column.kind == TEXT:
        return sql.SQL("{}::text").format(name)
    if column.kind == VECTOR:
        return sql.SQL("{}({})").format(sql.SQL(column.send_function), name)
    if column.kind == DOMAIN:
        return sql.SQL("{}::{}").format(name, sql.SQL(column.base_type))
    return name


def row_hash(plan: TablePlan, side: str) -> sql.Composable:
    """md5 of the row's binary form, as 32 hex digits."""
    columns = sql.SQL(", ").join(_column(plan, side, i) for i in range(len(plan.columns)))
    return sql.SQL("md5(record_send(ROW({})))").format(columns)


def summary(
    conn: psycopg.Connection, plan: TablePlan, side: str, segment: Segment | None
) -> Summary:
    """Row count and hash sums of one range (or of the whole table when `segment` is None)."""
    where = predicate(plan, side, segment) if segment is not None else sql.SQL("true")
    query = sql.SQL(
        "SELECT count(*),"
        " coalesce(sum(('x' || left(h, 16))::bit(64)::bigint), 0),"
        " coalesce(sum(('x' || right(h, 16))::bit(64)::bigint), 0)"
        " FROM (SELECT {} AS h FROM ONLY {} WHERE {} OFFSET 0) AS hashed"
    ).format(row_hash(plan, side), plan.identifier, where)
    count, first, last = conn.execute(query).fetchone()  # type: ignore[misc]
    return int(count), Decimal(first), Decimal(last)


def hashes(
    conn: psycopg.Connection, plan: TablePlan, side: str, segment: Segment
) -> dict[Key, str]:
    """key (as text) -> row hash, for every row of a small range."""
    query = sql.SQL("SELECT {}, {} FROM ONLY {} WHERE {}").format(
        key_text(plan), row_hash(plan, side), plan.identifier, predicate(plan, side, segment)
    )
    return {tuple(row[:-1]): row[-1] for row in conn.execute(query).fetchall()}


def split_points(
    conn: psycopg.Connection, plan: TablePlan, side: str, segment: Segment, step: int
) -> list[Key]:
    """Every `step`-th key of a range in the server's key order: bounds of its sub-ranges."""
    query = sql.SQL(
        "SELECT {} FROM (SELECT {}, row_number() OVER (ORDER BY {}) AS n"
        " FROM ONLY {} WHERE {}) AS numbered WHERE mod(n, {}) = 0 ORDER BY n"
    ).format(
        key_text(plan),
        key_list(plan),
        key_list(plan),
        plan.identifier,
        predicate(plan, side, segment),
        sql.Literal(step),
    )
    return [tuple(row) for row in conn.execute(query).fetchall()]
